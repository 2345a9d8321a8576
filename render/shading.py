"""The lit SHADED input images, rendered with pyrender (facts sheet §6.8).

What the authors' renders contain, stated plainly: flat-shaded vertex colours, pyrender's default
material, scene ambient light (0.01, 0.01, 0.1), and one spot light (inner cone pi/10, outer cone
pi/6, intensity 8 or 9, colour (1, u, 1) with u ~ U(0.7, 0.8)) at random poses on a horizontal
circle of radius 2 around the mesh, pointing at it. The authors added the light at 360 random
poses, but pyrender's shader takes at most ``MAX_N_LIGHTS = 4`` spot lights without shadows (both
the original pyrender and pyrender-maintained; facts §8 item 35 says 8, the constant says 4 and a
fifth light changes nothing, see ``tests/test_render.py``), picked in its own node order. So
4 random light directions lit every authors' image, and we add exactly those 4
(:data:`NUM_LIGHTS`). No shadows; a new light draw for every view.

One OpenGL context (:class:`ShadedRenderer`) is created per process and reused for every scan and
view (the authors leaked one per view, facts §8 item 34). ``PYOPENGL_PLATFORM`` must be set before
pyrender is first imported; :func:`gl_platform` does that (``osmesa`` unless the user chose one).
"""

from __future__ import annotations

import math
import os

import numpy as np
import trimesh

from utils.camera import CAMERA_Z, FOV_DEG, rotation_y

AMBIENT = (0.01, 0.01, 0.1)
SPOT_INNER = math.pi / 10
SPOT_OUTER = math.pi / 6
SPOT_RADIUS = 2.0
NUM_LIGHTS = 4
ORTHO_MAG = 0.47
MAX_CACHED_PROGRAMS = 4


def gl_platform(platform: str | None = None) -> str:
    """Choose the headless OpenGL back end (``osmesa`` or ``egl``) before pyrender is imported.

    An explicit ``platform`` wins, then an existing ``PYOPENGL_PLATFORM``, then ``osmesa``. With
    ``egl``, pyglet (imported by pyrender) is put in headless mode (EGL too), so no X11 library is
    needed.
    """
    if platform is not None:
        os.environ["PYOPENGL_PLATFORM"] = platform
    chosen = os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    if chosen == "egl":  # pyrender imports pyglet, whose default windowing needs X11 libraries
        os.environ.setdefault("PYGLET_HEADLESS", "true")
    return chosen


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """[H*f, W*f, C] -> [H, W, C] mean over f x f blocks (supersampling anti-aliasing)."""
    h, w, c = image.shape
    blocks = image.reshape(h // factor, factor, w // factor, factor, c).astype(np.float32)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _light_node_class() -> type:
    """``pyrender.Node`` hashed by the light's draw index (see :class:`ShadedRenderer`)."""
    import pyrender

    class LightNode(pyrender.Node):
        """A light node whose hash is its draw index. pyrender sums the lights in the iteration
        order of ``scene.light_nodes``, a set; with the default identity hash that order, and so
        the last bit of some SHADED pixels, followed memory addresses and changed between
        processes (a resumed run differed from an uninterrupted one). Small-integer hashes
        iterate in draw order."""

        def __init__(self, index: int, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.index = index

        def __hash__(self) -> int:
            return self.index

        def __eq__(self, other: object) -> bool:
            return self is other

    return LightNode


class ShadedRenderer:
    """Renders SHADED images of vertex-coloured meshes; one OpenGL context, reused.

    Args:
        res: output image side in pixels.
        supersample: render at ``res * supersample`` and average blocks down (OSMesa has no MSAA).
        ortho: orthographic camera (``xmag = ymag = 0.47``) instead of the 50-degree pinhole.
        platform: ``osmesa`` / ``egl`` / ``None`` (see :func:`gl_platform`).
    """

    def __init__(
        self, res: int, supersample: int = 1, ortho: bool = False, platform: str | None = None
    ) -> None:
        gl_platform(platform)
        import pyrender

        self._pyrender = pyrender
        self._light_node = _light_node_class()
        self.res = res
        self.supersample = supersample
        self.renderer = pyrender.OffscreenRenderer(res * supersample, res * supersample)
        if ortho:
            camera = pyrender.OrthographicCamera(xmag=ORTHO_MAG, ymag=ORTHO_MAG)
        else:
            camera = pyrender.PerspectiveCamera(yfov=math.radians(FOV_DEG), aspectRatio=1.0)
        self.camera_pose = np.eye(4)
        self.camera_pose[2, 3] = CAMERA_Z
        self.camera = camera
        self._mesh: trimesh.Trimesh | None = None

    def render(
        self, mesh: trimesh.Trimesh, rotation: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """One SHADED view.

        Args:
            mesh: normalised mesh with [V, 4] uint8 vertex colours (uploaded once and reused
                while the same object is passed).
            rotation: [3, 3] view rotation applied to the mesh.
            rng: draws the light intensity, colour and the light yaws.
        Returns:
            [res, res, 3] uint8 RGB (background black).
        """
        pyrender = self._pyrender
        if mesh is not self._mesh:
            self.scene = pyrender.Scene(ambient_light=AMBIENT, bg_color=(0.0, 0.0, 0.0, 0.0))
            self._mesh_node = self.scene.add(pyrender.Mesh.from_trimesh(mesh, smooth=False))
            self.scene.add(self.camera, pose=self.camera_pose)
            self._mesh = mesh
        pose = np.eye(4)
        pose[:3, :3] = rotation
        self.scene.set_pose(self._mesh_node, pose)
        for node in list(self.scene.light_nodes):
            self.scene.remove_node(node)
        light = pyrender.SpotLight(
            color=(1.0, float(rng.uniform(0.7, 0.8)), 1.0),
            intensity=float(rng.choice((8.0, 9.0))),
            innerConeAngle=SPOT_INNER,
            outerConeAngle=SPOT_OUTER,
        )
        for index, yaw in enumerate(rng.integers(0, 360, size=NUM_LIGHTS)):
            light_pose = np.eye(4)
            light_pose[:3, :3] = rotation_y(math.radians(float(yaw)))
            light_pose[:3, 3] = light_pose[:3, :3] @ np.array([0.0, 0.0, SPOT_RADIUS])
            self.scene.add_node(self._light_node(index, light=light, matrix=light_pose))
        color, _ = self.renderer.render(self.scene)
        # pyrender keys its shader programs by OpenGL.contextdata.getContext(), which under OSMesa
        # is a new object on every call: each render would compile and keep another program
        # (about 3 MB). Drop them once more than a frame's worth have piled up.
        programs = self.renderer._renderer._program_cache
        if len(programs._program_cache) > MAX_CACHED_PROGRAMS:
            programs.clear()
        color = np.ascontiguousarray(color[:, :, :3])
        if self.supersample > 1:
            color = _block_mean(color, self.supersample)
        return color

    def close(self) -> None:
        """Release the OpenGL context."""
        self.renderer.delete()
