"""``python -m hwrlib.data``: prepare every dataset that needs no download (MNIST's IDX files)."""
from .mnist import prepare_mnist

if __name__ == "__main__":
    print(f"MNIST IDX files in {prepare_mnist()}")
