"""Meshing of the front/back point clouds: oriented normals and screened Poisson (Open3D)."""

from meshing.io import PointCloud, PointCloudError, read_point_cloud, write_mesh, write_point_cloud
from meshing.normals import (
    cloud_depth_normals,
    depth_map_normals,
    estimate_normals,
    orient_normals_camera,
    orient_normals_tangent_plane,
    pixel_lattice,
)
from meshing.poisson import (
    AUTHORS_OPTIONS,
    Mesh,
    MeshingError,
    PoissonOptions,
    fix_orientation,
    reconstruct,
    trim,
    vertex_components,
)

__all__ = [
    "AUTHORS_OPTIONS",
    "Mesh",
    "MeshingError",
    "PointCloud",
    "PointCloudError",
    "PoissonOptions",
    "cloud_depth_normals",
    "depth_map_normals",
    "estimate_normals",
    "fix_orientation",
    "orient_normals_camera",
    "orient_normals_tangent_plane",
    "pixel_lattice",
    "read_point_cloud",
    "reconstruct",
    "trim",
    "vertex_components",
    "write_mesh",
    "write_point_cloud",
]
