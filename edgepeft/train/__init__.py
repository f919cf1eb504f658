"""`edgepeft train`: the trainer (teacher, student, compression stages), the one training loop every technique
plugs into, the teacher cache and torchrun support."""
