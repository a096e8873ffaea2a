"""CelebA's published format, in one place: file names, the aligned frame, the five landmarks.

The data stage checks files against it (``prepare-celeba``), the faces stage reads
the index's landmark columns by it, and the demo writes its offline replica by it.
"""

from __future__ import annotations

#: the three files of the aligned set, by their key under ``sources.celeba`` in the config
FILES = {
    "images": "img_align_celeba.zip",
    "landmarks": "list_landmarks_align_celeba.txt",
    "partition": "list_eval_partition.txt",
}
#: the folder holding the JPEGs inside img_align_celeba.zip
IMAGES_FOLDER = "img_align_celeba"
#: every aligned image is a 178x218 JPEG (width, height)
FRAME_WIDTH, FRAME_HEIGHT = 178, 218
FRAME_SIZE = (FRAME_WIDTH, FRAME_HEIGHT)

#: the five landmarks in the annotation file's order ("left" is the image's left)
LANDMARK_NAMES = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
#: their columns in list_landmarks_align_celeba.txt and in the index: x then y of each
LANDMARK_COLUMNS = tuple(f"{name}_{axis}" for name in LANDMARK_NAMES for axis in "xy")
#: mean landmark positions (x, y) over the aligned set, in frame pixels
MEAN_LANDMARKS = ((69.0, 111.0), (107.0, 111.0), (88.0, 134.0), (71.0, 152.0), (105.0, 152.0))

#: list_eval_partition.txt's codes
PARTITIONS = {"0": "train", "1": "valid", "2": "test"}


def image_name(number: int) -> str:
    """The file name of image ``number`` (1-based), as ``000001.jpg``."""
    return f"{number:06d}.jpg"
