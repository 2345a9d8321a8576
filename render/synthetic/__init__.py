"""Posed, clothed-looking synthetic humans from the open Anny body model.

Anny (NAVER, code Apache-2.0, MakeHuman-derived assets CC0) is a parametric human model with
phenotype blendshapes (gender, age, muscle, weight, height, proportions) and a 104-bone rig with
fingers. This package samples, per integer seed, a plausible adult phenotype, a natural standing
pose (walking, hands on hips, a raised arm, a slight crouch, ...), per-vertex colours of skin,
hair, eyes and clothes, and by default garments with their own geometry over the body (tops,
jackets and coats, trousers, skirts and dresses, shoes, hair with volume; ``garments``) in fabric
looks (``fabrics``), and writes them as training data: a binary PLY with vertex colours and a
COCO-WholeBody 133-keypoint JSON per human. ``backgrounds`` draws the scenes training composites
behind them.

Coordinate frame of everything returned (vertices, joints): metres, +Y up, the person faces +Z
(a camera at +Z looking down -Z sees the face), the person's own left side is at +X, the lowest
vertex lies at y = 0 and the pelvis (Anny's root bone) at x = z = 0.

Anny's own frame is Z-up with the person facing -Y and their left at +X; ``human._ANNY_TO_OUT``
maps it to ours. Poses are built as per-bone rotations about each bone's head, expressed in the
rest-pose world axes, composed down the kinematic chain into global rotations ``G`` and fed to
Anny in its ``"world-orient"`` parameterization (delta = ``G @ R_rest``), so identity rotations
reproduce the rest pose (an A-pose with the elbows bent about 45 degrees).

Modules: ``assets`` (the model and its per-vertex body parts), ``pose`` (the pose sampler and the
bone rotations), ``collision`` (the test that rejects interpenetrating or face-hiding poses),
``colors`` (skin, hair, eyes and painted garments), ``garments`` (garment geometry),
``fabrics`` (fabric colours), ``backgrounds`` (procedural scenes), ``human`` (assembly, keypoints,
storage, the batch generator).

The first ``Anny()`` builds a ~790 MB cache (about 1-2 minutes, ``ANNY_CACHE_DIR``); later loads
take about a second.
"""
