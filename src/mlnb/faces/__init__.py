"""Face detection, landmarks and OpenFace alignment (dlib + OpenCV), sharded for CelebA."""
