"""``python -m hwrlib.data``: prepare every dataset that needs no download (MNIST's IDX files)."""
import sys

from .idx import DataError
from .mnist import prepare_mnist

if __name__ == "__main__":
    try:
        print(f"MNIST IDX files in {prepare_mnist()}")
    except DataError as e:  # the message says what to do; a traceback would bury it
        sys.exit(f"error: {e}")
