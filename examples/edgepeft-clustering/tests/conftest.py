pytest_plugins = ["edgepeft.testing"]
