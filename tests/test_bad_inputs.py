"""Bad-input corpus of the inference batch driver (``run_folder`` and ``test_02_model.py``).

Every case puts one item ``bad`` (image, keypoints, mask ...) beside a good item ``good`` and runs
the batch. A case either fails with one line naming the file and the problem, leaving no output
file of ``bad`` and no temporary file, while ``good`` is still done; or it is an input kind that
works (16-bit, grey, JPEG, palette + tRNS, grey + alpha, fallbacks), in which case both items are
done. An input that is the good picture in another encoding must give exactly the good item's
outputs (byte for byte); one whose encoding changes the pixels (grey, JPEG's loss, a 216-colour
palette) exactly the outputs of the Predictor on those pixels, decoded here by other means (the
Predictor and the writers are deterministic, so no tolerance is needed). Checkpoint and folder
errors stop ``test_02_model.py`` before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_fuzz_inputs import encode_png
from test_inference import syn_item, tiny_model, write_syn_item

import test_02_model
from inference import InputOptions, OutputOptions, Predictor, run_folder
from inference.background import RembgMasker, SilhouetteError, check_silhouette
from inference.predictor import output_names, prediction_files
from models import build_model
from utils.keypoints import load_openpose_json

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny model: faster on one thread


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(tiny_model(front=1.9, back=2.1))


# ------------------------------------------------------------------------------------------------
# corpus builders: each writes the "bad" item into the input folder
# ------------------------------------------------------------------------------------------------

BODY = {"l_shoulder": 5, "l_ear": 18, "r_ear": 17, "l_big_toe": 19, "l_small_toe": 20}
BODY.update({"l_heel": 21, "r_big_toe": 22, "r_small_toe": 23, "r_heel": 24})


def _good_png() -> bytes:
    bgra, _ = syn_item()
    return cv2.imencode(".png", bgra)[1].tobytes()


def _json(folder: Path, data: object, stem: str = "bad") -> None:
    (folder / f"{stem}_keypoints.json").write_text(json.dumps(data))


def _syn_json() -> dict:
    return syn_item()[1]


def _drop(*names: str) -> Callable[[Path], None]:
    """Good image, JSON with the named BODY_25 keypoints (or 'hands') removed."""

    def make(folder: Path) -> None:
        (folder / "bad.png").write_bytes(_good_png())
        data = _syn_json()
        person = data["people"][0]
        for name in names:
            if name == "hands":
                person["hand_left_keypoints_2d"] = []
                del person["hand_right_keypoints_2d"]
            else:
                i = BODY[name]
                person["pose_keypoints_2d"][3 * i : 3 * i + 3] = [0.0, 0.0, 0.0]
        _json(folder, data)

    return make


def _image(writer: Callable[[np.ndarray], np.ndarray | bytes], name: str = "bad.png"):
    """Image derived from the good one by ``writer`` (array -> array for cv2, or bytes), JSON
    of the good one rescaled to the new image size."""

    def make(folder: Path) -> None:
        bgra, data = syn_item()
        out = writer(bgra)
        path = folder / name
        if isinstance(out, bytes):
            path.write_bytes(out)
            h, w = bgra.shape[:2]
        else:
            cv2.imwrite(str(path), out)
            h, w = out.shape[:2]
        sx, sy = w / bgra.shape[1], h / bgra.shape[0]
        person = data["people"][0]
        for key in ("pose_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"):
            a = np.asarray(person[key]).reshape(-1, 3)
            a[:, 0] *= sx
            a[:, 1] *= sy
            person[key] = a.ravel().tolist()
        _json(folder, data, Path(name).stem)

    return make


def _with_mask(
    make_image: Callable[[Path], None],
    mask: Callable[[np.ndarray], object],
    where: str = "masks",
):
    """``make_image`` plus ``<where>/bad_mask.png`` from ``mask(alpha of the good image)`` (an
    array written as PNG, or raw bytes); ``where`` is relative to the input folder."""

    def make(folder: Path) -> None:
        make_image(folder)
        alpha = syn_item()[0][:, :, 3]
        (folder / where).mkdir(exist_ok=True)
        out = mask(alpha)
        target = folder / where / "bad_mask.png"
        if isinstance(out, bytes):
            target.write_bytes(out)
        else:
            cv2.imwrite(str(target), out)

    return make


def _bytes(data: bytes, name: str = "bad.png", with_json: bool = True):
    def make(folder: Path) -> None:
        (folder / name).write_bytes(data)
        if with_json:
            _json(folder, _syn_json())

    return make


def _keypoints(data: object, suffix: str = ".json") -> Callable[[Path], None]:
    """Good image with the given keypoint file content (JSON object, array for .npy, or bytes)."""

    def make(folder: Path) -> None:
        (folder / "bad.png").write_bytes(_good_png())
        path = folder / f"bad_keypoints{suffix}"
        if isinstance(data, bytes):
            path.write_bytes(data)
        elif suffix == ".npy":
            np.save(path, data)
        else:
            path.write_text(data if isinstance(data, str) else json.dumps(data))

    return make


def _modify_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    data = _syn_json()
    change(data)
    return _keypoints(data)


def _scale_pose(data: dict) -> None:
    data["people"][0]["pose_keypoints_2d"] = [
        v * 4 if i % 3 != 2 else v for i, v in enumerate(data["people"][0]["pose_keypoints_2d"])
    ]


def _set_pose(index: int, value: float) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["people"][0]["pose_keypoints_2d"][index] = value

    return change


def _syn_npy(kind: str) -> object:
    from utils.keypoints import openpose_to_keypoints31

    kp = openpose_to_keypoints31(_syn_json())
    if kind == "nan":
        kp[5, 0] = np.nan
    elif kind == "shape":
        kp = kp[:30]
    return kp


def _png16(bgra: np.ndarray) -> np.ndarray:
    return bgra.astype(np.uint16) * 257


def _jpeg(bgra: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", bgra[:, :, :3])[1].tobytes()


def _opaque(bgra: np.ndarray) -> np.ndarray:
    out = bgra.copy()
    out[:, :, 3] = 255
    return out


def _no_alpha_folder(folder: Path) -> None:
    _image(lambda bgra: bgra[:, :, :3])(folder)


def _non_images(folder: Path) -> None:
    (folder / "notes.txt").write_text("not an image")
    (folder / "thing.npy").write_bytes(b"\x93NUMPY")
    (folder / "README").write_text("x")
    (folder / "dir.png").mkdir()
    (folder / "bad_mask.png").write_bytes(b"masks are not inputs")


def _grey_rgb(bgra: np.ndarray) -> np.ndarray:
    """The picture ``_image(lambda b: b[:, :, 0])`` stands for: its first channel as RGB."""
    return np.repeat(bgra[:, :, :1], 3, axis=2)


def _quantised(bgra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices [H, W] into a 217-entry palette [217, 3] RGB: entry 0 the background (alpha 0),
    1-216 the 6 x 6 x 6 colour cube."""
    levels = np.rint(bgra[:, :, 2::-1].astype(np.float64) / 51).astype(np.int64)  # RGB, 0..5
    index = 1 + levels[:, :, 0] * 36 + levels[:, :, 1] * 6 + levels[:, :, 2]
    index[bgra[:, :, 3] == 0] = 0
    cube = np.stack(np.meshgrid(*[np.arange(6) * 51] * 3, indexing="ij"), -1).reshape(-1, 3)
    return index, np.concatenate([[[0, 0, 0]], cube]).astype(np.uint8)


def _palette_trns(bgra: np.ndarray) -> bytes:
    """8-bit palette PNG of the picture (216 colours) whose tRNS makes entry 0 transparent."""
    index, palette = _quantised(bgra)
    return encode_png(index[:, :, None], 3, 8, palette.tobytes(), trns=b"\0")


def _palette_rgba(bgra: np.ndarray) -> np.ndarray:
    index, palette = _quantised(bgra)
    return np.dstack((palette[index], np.where(index > 0, 255, 0))).astype(np.uint8)


def _grey_alpha(depth: int) -> Callable[[np.ndarray], bytes]:
    """Grey + alpha PNG (colour type 4) at 8 or 16 bits of the first channel and the alpha."""

    def write(bgra: np.ndarray) -> bytes:
        samples = bgra[:, :, [0, 3]].astype(np.int64) * (257 if depth == 16 else 1)
        return encode_png(samples, 4, depth)

    return write


def _grey_rgba(bgra: np.ndarray) -> np.ndarray:
    return np.dstack((_grey_rgb(bgra), bgra[:, :, 3]))


def _one_pixel_alpha(bgra: np.ndarray) -> np.ndarray:
    out = bgra.copy()
    out[:, :, 3] = 0
    out[256, 175, 3] = 255
    return out


def _off_silhouette(alpha: np.ndarray) -> np.ndarray:
    """The person's mask moved 150 pixels to the left: the keypoints miss it."""
    out = np.zeros_like(alpha)
    out[:, :-150] = alpha[:, 150:]
    return out


@dataclass
class Case:
    make: Callable[[Path], None]
    error: str | None  # expected message part; None = the item works
    image: str = "bad.png"
    rembg: str | None = None  # "home": empty U2NET_HOME; "missing": --rembg_model to no file
    mask_dir: str | None = None  # --mask_dir, relative to the input folder
    same: str | Callable[[np.ndarray], np.ndarray] | None = None
    """A working item's outputs: "good": the good item's files, byte for byte; a function of the
    good BGRA picture giving the RGB(A) picture the item stands for: the Predictor's outputs for
    it (with the good item's mask when it gives RGB); None: only checked to exist."""


_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_good = _good_png
CASES: dict[str, Case] = {
    # image files
    "zero_byte_png": Case(_bytes(b""), "empty file (0 bytes)"),
    "truncated_png": Case(_bytes(_good()[: len(_good()) // 2]), "cannot be decoded"),
    "truncated_jpeg": Case(
        _image(lambda b: _jpeg(b)[: len(_jpeg(b)) - 300], "bad.jpg"),
        "cannot be decoded",
        image="bad.jpg",
    ),
    "corrupt_png": Case(_bytes(_PNG_SIG + bytes(range(256)) * 8), "cannot be decoded"),
    "text_named_jpg": Case(_bytes(b"hello", "bad.jpg"), "cannot be decoded", image="bad.jpg"),
    "tiny_3x3": Case(_image(lambda b: cv2.resize(b, (3, 3))), "too small"),
    "aspect_4000x20": Case(_image(lambda b: cv2.resize(b, (4000, 20))), "aspect ratio"),
    "empty_alpha": Case(_image(lambda b: np.dstack((b[:, :, :3], 0 * b[:, :, 3]))), "empty alpha"),
    "one_pixel_alpha": Case(_image(_one_pixel_alpha), "too little for a person"),
    "rgba_16bit": Case(_image(_png16), None, same="good"),
    "grey_with_mask": Case(
        _with_mask(_image(lambda b: b[:, :, 0]), lambda a: a),
        None,
        mask_dir="masks",
        same=_grey_rgb,
    ),
    "grey16_with_mask": Case(
        _with_mask(_image(lambda b: _png16(b[:, :, 0])), lambda a: a),
        None,
        mask_dir="masks",
        same=_grey_rgb,
    ),
    "jpeg_upper_case_with_mask": Case(
        _with_mask(_image(_jpeg, "bad.JPG"), lambda a: a),
        None,
        image="bad.JPG",
        mask_dir="masks",
        same=lambda b: cv2.imdecode(np.frombuffer(_jpeg(b), np.uint8), 1)[:, :, ::-1],  # its loss
    ),
    "opaque_alpha_uses_mask": Case(
        _with_mask(_image(_opaque), lambda a: a), None, mask_dir="masks", same="good"
    ),
    "palette_trns": Case(_image(_palette_trns), None, same=_palette_rgba),
    "grey_alpha": Case(_image(_grey_alpha(8)), None, same=_grey_rgba),
    "grey16_alpha16": Case(_image(_grey_alpha(16)), None, same=_grey_rgba),
    "dotted_stem": Case(_image(lambda b: b, "bad.v2.png"), None, image="bad.v2.png", same="good"),
    "non_image_files_ignored": Case(_non_images, None, image=""),
    "mask_beside_the_image": Case(
        _with_mask(_no_alpha_folder, lambda a: a, where="."), None, mask_dir=".", same="good"
    ),
    "mask_dir_is_the_input_folder_without_mask": Case(
        _no_alpha_folder, "U2NET_HOME", rembg="home", mask_dir="."
    ),
    # masks
    "mask_unreadable": Case(
        _with_mask(_no_alpha_folder, lambda a: b"garbage"),
        "cannot be decoded as a mask",
        mask_dir="masks",
    ),
    "mask_wrong_size": Case(
        _with_mask(_no_alpha_folder, lambda a: cv2.resize(a, (100, 100))),
        "mask is",
        mask_dir="masks",
    ),
    "mask_empty": Case(
        _with_mask(_no_alpha_folder, lambda a: 0 * a), "empty mask", mask_dir="masks"
    ),
    "keypoints_off_the_mask": Case(
        _with_mask(_no_alpha_folder, _off_silhouette), "lie on the silhouette", mask_dir="masks"
    ),
    "no_mask_no_rembg_model": Case(_no_alpha_folder, "U2NET_HOME", rembg="home"),
    "rembg_model_file_missing": Case(_no_alpha_folder, "rembg model not found", rembg="missing"),
    # keypoint files
    "missing_json": Case(_bytes(_good(), with_json=False), "no keypoint file"),
    "malformed_json": Case(_keypoints('{"people": [ {"pose'), "invalid JSON"),
    "zero_people": Case(_keypoints({"version": 1.3, "people": []}), "zero people"),
    "no_people_key": Case(_keypoints({"version": 1.3}), "no 'people' key"),
    "pose_wrong_length": Case(
        _keypoints({"people": [{"pose_keypoints_2d": [1.0] * 54}]}), "expected 75"
    ),
    "json_nan": Case(_modify_json(_set_pose(15, float("nan"))), "non-finite"),
    "json_400_digit_int": Case(_modify_json(_set_pose(0, 10**400)), "too large for a float"),
    "keypoints_outside_image": Case(_modify_json(_scale_pose), "outside the 350x512 image"),
    "missing_hands_fallback": Case(_drop("hands"), None),
    "missing_ears_fallback": Case(_drop("l_ear", "r_ear"), None),
    "missing_heels_fallback": Case(_drop("l_heel", "r_heel"), None),
    "missing_left_toes": Case(_drop("l_big_toe", "l_small_toe"), "l_foot"),
    "missing_feet": Case(
        _drop("l_big_toe", "l_small_toe", "r_big_toe", "r_small_toe"), "l_foot (missing"
    ),
    "missing_shoulder": Case(_drop("l_shoulder"), "upper_body"),
    "npy_keypoints": Case(_keypoints(_syn_npy("ok"), ".npy"), None, same="good"),
    "npy_complex": Case(_keypoints(_syn_npy("ok") + 1j, ".npy"), "real numbers"),
    "npy_nan": Case(_keypoints(_syn_npy("nan"), ".npy"), "non-finite keypoint values in rows [5]"),
    "npy_wrong_shape": Case(_keypoints(_syn_npy("shape"), ".npy"), "must be a (31, 3)"),
    "npy_corrupt": Case(_keypoints(b"\x93NUMPY garbage", ".npy"), "cannot be read as a .npy"),
}


def _expected_outputs(
    case: Case, predictor: Predictor, out: Path, folder: Path, stem: str
) -> dict[str, bytes]:
    """What a working item must have written (see :attr:`Case.same`): relative path -> bytes."""
    names = output_names(stem, OutputOptions())
    if case.same == "good":
        good = output_names("good", OutputOptions())
        return {name: (out / rel).read_bytes() for name, rel in zip(names, good, strict=True)}
    bgra = syn_item()[0]
    image = case.same(bgra)
    mask = bgra[:, :, 3] > 0 if image.shape[2] == 3 else None
    keypoints = load_openpose_json(folder / "good_keypoints.json")
    pred = predictor.predict(image, keypoints, mask, stem)
    return prediction_files(pred, stem, OutputOptions())


def _outputs(out: Path, stem: str) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file() and p.name.startswith(stem)]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_case(
    name: str, predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    folder = tmp_path / "in"
    write_syn_item(folder, "good")
    case.make(folder)
    if case.rembg == "home":
        monkeypatch.setenv("U2NET_HOME", str(tmp_path / "no_models"))
    elif case.rembg == "missing":
        monkeypatch.setattr(predictor, "masker", RembgMasker(tmp_path / "u2net.onnx"))
    out = tmp_path / "out"
    mask_dir = folder / case.mask_dir if case.mask_dir is not None else None
    report = run_folder(predictor, folder, out, InputOptions(mask_dir=mask_dir), progress=False)

    assert "good.png" in [p.name for p in report.done]
    assert not list(out.rglob(".*")), "temporary files left behind"
    if case.error is None:
        assert report.ok, report.failed
        if case.image:
            assert case.image in [p.name for p in report.done]
            stem = case.image.rsplit(".", 1)[0]
            for rel in output_names(stem, OutputOptions()):
                assert (out / rel).is_file(), rel
            if case.same is not None:
                expected = _expected_outputs(case, predictor, out, folder, stem)
                for rel, data in expected.items():
                    assert (out / rel).read_bytes() == data, f"{rel} differs"
        else:
            assert [p.name for p in report.done] == ["good.png"]
        return
    assert [p.name for p, _ in report.failed] == [case.image]
    message = report.failed[0][1]
    assert case.error in message, message
    assert "\n" not in message and "bad" in message  # one line, naming the file
    assert _outputs(out, "bad") == []


def test_opaque_alpha_falls_back_to_the_mask(predictor: Predictor, tmp_path: Path) -> None:
    CASES["opaque_alpha_uses_mask"].make(tmp_path)
    inputs = InputOptions(keypoint_dir=tmp_path, mask_dir=tmp_path / "masks")
    run_folder(predictor, [tmp_path / "bad.png"], tmp_path / "out", inputs)
    cut = cv2.imread(str(tmp_path / "out/images/bad.png"), cv2.IMREAD_UNCHANGED)
    coverage = (cut[:, :, 3] > 0).mean()
    assert 0.05 < coverage < 0.5  # the mask's person, not the whole opaque frame


def test_corpus_is_large_enough() -> None:
    assert len(CASES) + len(SCRIPT_CASES) >= 25


# ------------------------------------------------------------------------------------------------
# checkpoint and folder errors: test_02_model.py stops before writing anything
# ------------------------------------------------------------------------------------------------


def _ckpt_missing(tmp: Path) -> Path:
    return tmp / "nothing.pt"


def _ckpt_text(tmp: Path) -> Path:
    path = tmp / "notes.pt"
    path.write_text("not a checkpoint")
    return path


def _ckpt_other_model(tmp: Path) -> Path:
    path = tmp / "linear.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    return path


def _ckpt_phase1(tmp: Path) -> Path:
    path = tmp / "phase1.pt"
    torch.save({"model": build_model(phase=1, res=256, width=0.125).state_dict()}, path)
    return path


def _ckpt_truncated(tmp: Path) -> Path:
    path = tmp / "half.pt"
    torch.save({"model": tiny_model().state_dict()}, path)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def _ckpt_wrong_width(tmp: Path) -> Path:
    path = tmp / "w0125.pt"
    torch.save({"model": tiny_model().state_dict(), "args": json.dumps({"width": 0.25})}, path)
    return path


SCRIPT_CASES: dict[str, tuple[Callable[[Path], Path], str, list[str]]] = {
    "checkpoint_missing": (_ckpt_missing, "checkpoint not found", []),
    "checkpoint_text_file": (_ckpt_text, "cannot be read as a PyTorch checkpoint", []),
    "checkpoint_other_model": (_ckpt_other_model, "does not fit Model2K2K", []),
    "checkpoint_phase1": (_ckpt_phase1, "phase-1 checkpoint", []),
    "checkpoint_truncated": (_ckpt_truncated, "cannot be read as a PyTorch checkpoint", []),
    "checkpoint_wrong_width": (_ckpt_wrong_width, "mis-shaped", ["--res", "256"]),
    "data_path_missing": (_ckpt_text, "input folder not found", ["--data_path", "/nonexistent"]),
}


@pytest.mark.parametrize("name", list(SCRIPT_CASES))
def test_script_stops_on_bad_checkpoint_or_folder(name: str, tmp_path: Path) -> None:
    make, error, extra = SCRIPT_CASES[name]
    write_syn_item(tmp_path / "in", "good")
    checkpoint = make(tmp_path)
    argv = ["--data_path", str(tmp_path / "in"), "--checkpoint", str(checkpoint)]
    argv += ["--save_path", str(tmp_path / "out"), "--threads", "1", *extra]
    with pytest.raises(SystemExit) as exit_info:
        test_02_model.main(test_02_model.get_parser().parse_args(argv))
    message = str(exit_info.value.code)
    assert message.startswith("error: ") and error in message, message
    if name.startswith("checkpoint"):
        assert checkpoint.name in message.splitlines()[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("extent", "squeeze"),
    [(0.27, 1.0), (0.3, 0.6), (0.95, 0.35)],
    ids=["small_person", "small_profile", "tall_thin_profile"],
)
def test_small_or_thin_people_pass_the_silhouette_check(extent: float, squeeze: float) -> None:
    """The fixture's person scaled to a small extent of a 512² input, or squeezed sideways like a
    profile, is still a person: the thresholds refuse specks, not people far from the camera."""
    from conftest import CASE_SYN

    res = 512
    person = cv2.imread(str(CASE_SYN / "mask_2048.png"), cv2.IMREAD_GRAYSCALE) > 0
    rows, cols = np.flatnonzero(person.any(1)), np.flatnonzero(person.any(0))
    person = person[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.uint8)
    h = round(extent * res)
    w = max(1, round(person.shape[1] * h / person.shape[0] * squeeze))
    small = cv2.resize(person, (w, h), interpolation=cv2.INTER_AREA) > 0
    mask = np.zeros((res, res), bool)
    mask[10 : 10 + h, 20 : 20 + w] = small
    check_silhouette(mask, np.zeros((31, 3)), "person.png")
    mask[10 + h // 5 :] = False  # the head and shoulders alone
    with pytest.raises(SilhouetteError, match="person.png: the silhouette"):
        check_silhouette(mask, np.zeros((31, 3)), "person.png")
