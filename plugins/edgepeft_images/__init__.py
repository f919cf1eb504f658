"""Images: data sets ``fashion-mnist`` (:mod:`.fashion_mnist`), Zalando's clothing images, and ``image-folder``
(:mod:`.image_folder`), a user's own images."""

from __future__ import annotations

import edgepeft

from .fashion_mnist import FashionMNIST
from .image_folder import ImageFolder


@edgepeft.hookimpl
def edgepeft_register_datasets(register: edgepeft.Registrar) -> None:
    register(FashionMNIST)
    register(ImageFolder)
