"""Heart segmentation with a 3-D U-Net: does the augmentation post's augmentation help?

``preprocess`` (crop to the body, resample to the set's median spacing, z-score, one pack per set),
``folds`` (k folds fixed by the seed), ``patches`` (the whole pack on the device, patches drawn there),
``onthefly`` (the augment section's random policy applied to a batch on the device), ``network`` (the
U-Net), ``losses`` and ``metrics`` (Dice + cross-entropy; Dice and HD95), ``inference`` (sliding windows
back to the original grid), ``train`` (one (arm, fold)) and ``report`` (every arm against ``none``).
"""
