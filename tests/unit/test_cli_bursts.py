"""`kontext-pipeline local` with several images: what it takes, checked before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from kontext_tools.cli import main
from kontext_tools.cli.arguments import checked_images
from kontext_tools.cli.burst import result_folders


def test_a_folder_gives_its_images_in_order_and_skips_other_files(tmp_path: Path) -> None:
    # Given a folder with two images and a text file
    for name in ("b.JPG", "a.png", "readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    # When it is given as --image / Then its images are taken, sorted, and nothing else
    assert [path.name for path in checked_images([str(tmp_path)])] == ["a.png", "b.JPG"]


def test_images_of_the_same_name_get_a_folder_each() -> None:
    # Given images with one name in two places / When their result folders are named
    names = result_folders([Path("x/cat.png"), Path("y/cat.jpg"), Path("dog food.png")])
    # Then no two share a folder
    assert names == ["cat", "cat-2", "dog-food"]


def test_a_folder_without_images_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a folder with no images
    (tmp_path / "notes.txt").write_text("x")
    # When the local run is asked to edit it
    code = main(["local", "--image", str(tmp_path), "--prompt", "x", "--out", str(tmp_path / "o")])
    # Then it exits 2 with one line naming the problem, and nothing was written
    assert code == 2
    assert "holds no images" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_a_concurrency_below_one_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an image and a concurrency of 0
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    argv = ["local", "--image", str(image), "--prompt", "x", "--concurrency", "0"]
    # When the local run starts / Then it stops at once with exit 2, naming the option
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    assert "--concurrency" in capsys.readouterr().err
