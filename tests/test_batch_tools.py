"""Per-item isolation and interrupted runs of the inference-side batch tools.

``test_02_model.py``, ``test_03_poisson.py`` and ``evaluate.py`` run each item through
:func:`utils.batch.run_item`: an exception nobody planned for (injected here into our own code,
since real inputs that raise one are fixed as they are found) fails that item alone with one line
naming its file and the exception type, nothing is written under its name, the batch goes on and
the exit status is 1; ``--debug`` adds the traceback. A whole-run problem (an output folder that
cannot be written) stops the tool before anything is written. A batch killed with SIGKILL leaves
no truncated file under a real name, and its rerun with ``--skip_existing`` ends with the same
bytes as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_inference import save_checkpoint, tiny_model, write_syn_item
from test_poisson import fibonacci_sphere, hemisphere_colors

import evaluate
import test_02_model
import test_03_poisson
from inference.predictor import Predictor
from meshing import batch as meshing_batch
from meshing.io import PointCloud, write_point_cloud
from utils.batch import failure_line, run_item
from utils.errors import BadInputError

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# utils.batch
# ------------------------------------------------------------------------------------------------


def test_run_item_turns_any_exception_into_one_line(caplog: pytest.LogCaptureFixture) -> None:
    failures: list[tuple[str, str]] = []

    def boom() -> int:
        raise ZeroDivisionError("division by zero\nsecond line")

    with caplog.at_level(logging.ERROR):
        assert run_item("in/a.png", boom, failures) is None
        assert run_item("in/b.png", lambda: 7, failures) == 7
    assert failures == [("in/a.png", "in/a.png: ZeroDivisionError: division by zero")]
    assert "Traceback" not in caplog.text and caplog.text.count("FAILED") == 1

    caplog.clear()
    with caplog.at_level(logging.ERROR):
        run_item("in/a.png", boom, failures, debug=True)
    assert "Traceback" in caplog.text and "in boom" in caplog.text


def test_failure_line_keeps_a_bad_input_message() -> None:
    named = BadInputError("in/a_keypoints.json: 'pose_keypoints_2d' must be a list of numbers")
    assert failure_line("in/a.png", named) == str(named)  # names a file already: kept as is
    assert failure_line("in/a.png", BadInputError("too small")) == "in/a.png: too small"
    assert failure_line("in/a.png", MemoryError()) == "in/a.png: MemoryError"


def test_run_item_lets_an_interrupt_through() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_item("a", interrupted, [])


# ------------------------------------------------------------------------------------------------
# test_02_model.py
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.pt", "ours")


def run_02(checkpoint: Path, data: Path, out: Path, *extra: str) -> int:
    args = test_02_model.get_parser().parse_args(
        ["--data_path", str(data), "--checkpoint", str(checkpoint), "--save_path", str(out)]
        + ["--save_name", "run", "--no_normal_parts", *extra]
    )
    try:
        test_02_model.main(args)
    except SystemExit as e:
        return 1 if e.code not in (0, None) else 0
    return 0


def output_tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every output file (``args.json`` and stray temporaries apart)."""
    return {
        os.fspath(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "args.json" and not p.name.endswith(".tmp")
    }


@pytest.mark.usefixtures("one_torch_thread")
def test_02_unexpected_error_fails_one_image(
    checkpoint: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = tmp_path / "in"
    for stem in ("a", "b", "c"):
        write_syn_item(data, stem)
    predict = Predictor.predict

    def faulty(self: Predictor, image, keypoints, mask=None, source="<image>"):  # noqa: ANN001
        if source.endswith("b.png"):
            raise ZeroDivisionError("injected fault")
        return predict(self, image, keypoints, mask, source)

    monkeypatch.setattr(Predictor, "predict", faulty)
    assert run_02(checkpoint, data, tmp_path / "out") == 1
    err = capsys.readouterr().err
    failed = {line for line in err.splitlines() if line.startswith("FAILED")}  # log + summary
    assert failed == {f"FAILED {data / 'b.png'}: ZeroDivisionError: injected fault"}, err
    assert "Traceback" not in err + caplog.text
    out = tmp_path / "out" / "run"
    assert {p.name for p in (out / "output_plys").iterdir()} == {"a.ply", "c.ply"}
    assert not [p for p in out.rglob("b*")] and not list(out.rglob("*.tmp"))

    caplog.clear()
    assert run_02(checkpoint, data, tmp_path / "out2", "--debug") == 1
    assert "Traceback" in caplog.text and "injected fault" in caplog.text


def test_02_unwritable_output_stops_before_anything(checkpoint: Path, tmp_path: Path) -> None:
    data = tmp_path / "in"
    write_syn_item(data, "a")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as info:
        test_02_model.main(
            test_02_model.get_parser().parse_args(
                ["--data_path", str(data), "--checkpoint", str(checkpoint)]
                + ["--save_path", str(blocker), "--save_name", "run"]
            )
        )
    assert str(info.value).startswith(f"error: {blocker / 'run'}: output folder cannot be written")
    assert blocker.read_text() == "not a folder"


def kill_when_writing(cmd: list[str], out: Path, first_output: str, limit_s: float = 120) -> None:
    """Start ``cmd``; once ``first_output`` exists under ``out``, SIGKILL it while it writes a
    later file (a temporary file exists), or after 0.2 s if that moment is not caught."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + limit_s
    try:
        while not (out / first_output).is_file() and time.monotonic() < deadline:
            assert proc.poll() is None, "the batch ended before its first output"
            time.sleep(0.001)
        catch_until = time.monotonic() + 0.2
        while time.monotonic() < catch_until:
            if any(p.name.endswith(".tmp") for p in out.rglob(".*")):
                break
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_02_killed_batch_resumes_to_the_same_outputs(checkpoint: Path, tmp_path: Path) -> None:
    data = tmp_path / "in"
    stems = [f"p{i}" for i in range(8)]
    for stem in stems:
        write_syn_item(data, stem)
    base = [sys.executable, "test_02_model.py", "--data_path", str(data)]
    base += ["--checkpoint", str(checkpoint), "--threads", "1", "--save_name", "run"]
    subprocess.run([*base, "--save_path", str(tmp_path / "whole")], cwd=ROOT, check=True)
    whole = output_tree(tmp_path / "whole" / "run")

    out = tmp_path / "cut" / "run"
    kill_when_writing([*base, "--save_path", str(tmp_path / "cut")], out, "depth/p0_front.png")
    cut = output_tree(out)
    assert cut and len(cut) < len(whole)
    for name, data_bytes in cut.items():  # every file under a real name is complete
        assert data_bytes == whole[name], name

    cmd = [*base, "--save_path", str(tmp_path / "cut"), "--skip_existing"]
    subprocess.run(cmd, cwd=ROOT, check=True)
    assert output_tree(out) == whole


# ------------------------------------------------------------------------------------------------
# test_03_poisson.py
# ------------------------------------------------------------------------------------------------


def write_spheres(folder: Path, n: int) -> list[Path]:
    """``n`` coloured sphere clouds (with normals), radii 0.30 .. 0.30 + 0.02 (n - 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        points, normals = fibonacci_sphere(4000, 0.30 + 0.02 * i)
        path = folder / f"s{i}.ply"
        write_point_cloud(path, PointCloud(points, hemisphere_colors(points), normals))
        paths.append(path)
    return paths


def run_03(*argv: str) -> int:
    try:
        test_03_poisson.main(test_03_poisson.get_parser().parse_args(list(argv)))
    except SystemExit as e:
        return 1 if e.code not in (0, None) else 0
    return 0


def test_03_unexpected_error_fails_one_cloud(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_spheres(tmp_path / "in", 3)
    reconstruct = meshing_batch.reconstruct

    def faulty(points: np.ndarray, *args, **kwargs):  # noqa: ANN002, ANN003
        if len(points) and abs(np.linalg.norm(points[0]) - 0.32) < 1e-3:  # the second sphere
            raise IndexError("injected fault")
        return reconstruct(points, *args, **kwargs)

    monkeypatch.setattr(meshing_batch, "reconstruct", faulty)
    argv = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--depth", "6"]
    assert run_03(*argv) == 1
    err = capsys.readouterr().err
    failed = {line for line in err.splitlines() if line.startswith("FAILED")}  # log + summary
    assert failed == {f"FAILED {tmp_path / 'in' / 's1.ply'}: IndexError: injected fault"}, err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.obj")) == ["s0.obj", "s2.obj"]
    assert "Traceback" not in caplog.text
    caplog.clear()
    assert run_03(*argv, "--skip_existing", "--debug") == 1
    assert "Traceback" in caplog.text


def test_03_cloud_names_that_are_not_files_fail_alone(tmp_path: Path) -> None:
    write_spheres(tmp_path / "in", 1)
    (tmp_path / "in" / "broken.ply").symlink_to(tmp_path / "nothing.ply")
    os.mkfifo(tmp_path / "in" / "pipe.ply")
    clouds = meshing_batch.list_clouds([tmp_path / "in"])
    outputs = meshing_batch.output_paths(clouds, tmp_path / "out")
    options = test_03_poisson.resolve_options(test_03_poisson.get_parser().parse_args([]))
    report = meshing_batch.run_batch(clouds, outputs, dataclasses.replace(options, depth=6))
    assert [p.name for p in report.done] == ["s0.ply"]
    assert {p.name: line.split(": ", 1)[1] for p, line in report.failed} == {
        "broken.ply": "file not found",
        "pipe.ply": "not a regular file",
    }


def test_03_unwritable_output_stops_before_anything(tmp_path: Path) -> None:
    write_spheres(tmp_path / "in", 1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["--input", str(tmp_path / "in"), "--output", str(blocker / "meshes")]
    with pytest.raises(SystemExit, match="output folder cannot be written"):
        test_03_poisson.main(test_03_poisson.get_parser().parse_args(argv))


def test_03_killed_batch_resumes_to_the_same_outputs(tmp_path: Path) -> None:
    write_spheres(tmp_path / "in", 6)
    base = [sys.executable, "test_03_poisson.py", "--input", str(tmp_path / "in")]
    base += ["--depth", "7", "--threads", "1"]
    subprocess.run([*base, "--output", str(tmp_path / "whole")], cwd=ROOT, check=True)
    whole = output_tree(tmp_path / "whole")
    assert len(whole) == 6

    out = tmp_path / "cut"
    kill_when_writing([*base, "--output", str(out)], out, "s0.obj")
    cut = output_tree(out)
    assert len(cut) < len(whole)
    for name, data_bytes in cut.items():
        assert data_bytes == whole[name], name
    subprocess.run([*base, "--output", str(out), "--skip_existing"], cwd=ROOT, check=True)
    assert output_tree(out) == whole


# ------------------------------------------------------------------------------------------------
# evaluate.py
# ------------------------------------------------------------------------------------------------


def test_evaluate_unexpected_error_fails_one_item(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import trimesh

    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir()
    gt.mkdir()
    for name in ("a", "b", "c"):
        trimesh.creation.icosphere(2, 0.9).export(pred / f"{name}.obj")
        trimesh.creation.icosphere(2, 0.91).export(gt / f"{name}.obj")
    metrics = evaluate.mesh_metrics
    calls = iter(range(3))

    def faulty(*args):  # noqa: ANN002
        if next(calls) == 1:  # the second item, b
            raise KeyError("injected fault")
        return metrics(*args)

    monkeypatch.setattr(evaluate, "mesh_metrics", faulty)
    parser = evaluate.get_parser()
    args = parser.parse_args(
        ["--pred", str(pred), "--gt", str(gt), "--units", "m", "--no_normals"]
        + ["--num_samples", "2000", "--out", str(tmp_path / "eval" / "m.json")]
    )
    evaluate.check_args(parser, args)
    with pytest.raises(SystemExit) as info:
        evaluate.main(args)
    assert info.value.code == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("FAILED")]
    assert lines == [f"FAILED {pred / 'b.obj'}: KeyError: 'injected fault'"]
    assert "2 evaluated, 1 failed" in capsys.readouterr().out


def test_evaluate_unwritable_output_stops_before_anything(tmp_path: Path) -> None:
    import trimesh

    trimesh.creation.icosphere(1).export(tmp_path / "a.obj")
    blocker = tmp_path / "file"
    blocker.write_text("")
    parser = evaluate.get_parser()
    args = parser.parse_args(
        ["--pred", str(tmp_path / "a.obj"), "--gt", str(tmp_path / "a.obj")]
        + ["--out", str(blocker / "m.json"), "--units", "m"]
    )
    evaluate.check_args(parser, args)
    with pytest.raises(SystemExit, match="output folder cannot be written"):
        evaluate.main(args)


# ------------------------------------------------------------------------------------------------
# one folder holding every case of the bad-input corpus
# ------------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("one_torch_thread")
def test_02_mixed_folder_gives_exactly_the_good_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every case of ``tests/test_bad_inputs.py`` that needs no mask folder or rembg setting, each
    under its own stem, in one folder beside the good item and run as one batch: the working
    items (and only they) are done, each bad item fails with one line naming its file and the
    case's reason, and nothing of a bad item is written."""
    from test_bad_inputs import CASES

    from inference import InputOptions, OutputOptions, run_folder
    from inference.predictor import output_names

    mixed = tmp_path / "mixed"
    write_syn_item(mixed, "good")
    expected_done, expected_failed = {"good.png"}, {}
    for name, case in CASES.items():
        if case.mask_dir is not None or case.rembg is not None or not case.image:
            continue
        scratch = tmp_path / "cases" / name
        scratch.mkdir(parents=True)
        case.make(scratch)
        for f in scratch.iterdir():
            assert f.name.startswith("bad"), f
            f.rename(mixed / f"{name}{f.name[3:]}")
        image = f"{name}{case.image[3:]}"
        if case.error is None:
            expected_done.add(image)
        else:
            expected_failed[image] = case.error
    assert len(expected_failed) >= 20 and len(expected_done) >= 5
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "no_models"))
    predictor = Predictor(tiny_model(front=1.9, back=2.1))
    out = tmp_path / "out"
    report = run_folder(predictor, mixed, out, InputOptions(), progress=False)
    assert {p.name for p in report.done} == expected_done
    failed = {p.name: line for p, line in report.failed}
    assert set(failed) == set(expected_failed)
    for image, line in failed.items():
        assert "\n" not in line and Path(image).stem in line and expected_failed[image] in line, (
            line
        )
    written = {os.fspath(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    names = {n for image in expected_done for n in output_names(Path(image).stem, OutputOptions())}
    assert written == names, written ^ names


@pytest.mark.usefixtures("one_torch_thread")
def test_02_image_names_that_are_not_files_fail_alone(tmp_path: Path) -> None:
    """A broken link and a named pipe with an image's name are each one failed item (before, they
    vanished from the batch unnoticed); a folder with such a name is no input."""
    from inference import InputOptions, run_folder

    data = tmp_path / "in"
    write_syn_item(data, "good")
    (data / "folder.png").mkdir()
    (data / "broken.png").symlink_to(data / "nothing.png")
    os.mkfifo(data / "pipe.png")
    predictor = Predictor(tiny_model(front=1.9, back=2.1))
    report = run_folder(predictor, data, tmp_path / "out", InputOptions(), progress=False)
    assert [p.name for p in report.done] == ["good.png"]
    assert {p.name: line.split(": ", 1)[1] for p, line in report.failed} == {
        "broken.png": "cannot read image (no such file)",
        "pipe.png": "cannot read image (not a regular file)",
    }
