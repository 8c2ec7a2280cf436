"""The results page in a real browser: headless Chromium from Debian's packages, driven by
Selenium through Debian's chromedriver (`make browser` installs both).

The page must work opened from disk with no network, so the browser runs with every
host unresolvable and a dead proxy. A screenshot of each page is kept in tests/artifacts/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kontext_tools.report import write_report
from tests.conftest import ROOT, make_image

ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).is_file()]
    assert not missing, (
        f"{missing} not installed: run `make browser` (apt-get chromium chromium-driver)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        # No network at all: the page must need none.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--proxy-server=127.0.0.1:9",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def images_as_loaded(driver: Any) -> list[dict[str, Any]]:
    return list(
        driver.execute_script(
            "return Array.from(document.images).map(i => ({src: i.getAttribute('src'),"
            " complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}));"
        )
    )


def test_a_succeeded_job_shows_the_input_beside_each_output(browser: Any, tmp_path: Path) -> None:
    # Given a downloaded result: two outputs (JPEG and PNG bytes) and the sample input
    out = tmp_path / "result"
    out.mkdir()
    (out / "0.jpg").write_bytes(make_image("JPEG", (768, 512), "orange"))
    (out / "1.png").write_bytes(make_image("PNG", (768, 512), "teal"))
    job = {
        "status": "SUCCEEDED",
        "source": {"key": "inputs/kitchen-table.jpg"},
        "prompt": "Put a donut next to the flour. <b>not bold</b>",
        "request_id": "5f1c-req",
        "seed": 1234567,
        "timings": {"inference": 6.4},
        "has_nsfw_concepts": [False, False],
    }
    outputs = [
        (out / "0.jpg", {"width": 768, "height": 512, "content_type": "image/jpeg"}),
        (out / "1.png", {"width": 768, "height": 512, "content_type": "image/png"}),
    ]
    page = write_report(
        out,
        job=job,
        input_image=ROOT / "samples" / "kitchen-table.jpg",
        outputs=outputs,
        options={"num_images": 2, "output_format": "jpeg", "seed": 1234567},
    )
    # When the page is opened from disk
    browser.get(page.as_uri())
    # Then every image decoded: the input first, then each output
    loaded = images_as_loaded(browser)
    assert [image["src"] for image in loaded] == ["input.jpg", "0.jpg", "1.png"]
    assert all(image["complete"] and image["width"] > 0 for image in loaded), loaded
    assert (loaded[1]["width"], loaded[1]["height"]) == (768, 512)
    # And the facts a person compares by are on the page, the prompt as text, not markup
    text = browser.find_element("tag name", "body").text
    for fact in (
        "SUCCEEDED",
        "not bold",
        "5f1c-req",
        "1234567",
        "inference 6.40 s",
        "num-images=2",
    ):
        assert fact in text
    assert browser.find_elements("tag name", "b") == []
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report-succeeded.png"))


def test_a_failed_job_shows_its_reason_and_message(browser: Any, tmp_path: Path) -> None:
    # Given a failed job: no outputs, the reason and message from its notification
    job = {
        "status": "FAILED",
        "source": {"key": "inputs/notes.jpg"},
        "prompt": "make it snow",
        "failure": {"reason": "not_an_image", "message": "s3://b/inputs/notes.jpg is not a JPEG"},
    }
    page = write_report(tmp_path, job=job, input_image=ROOT / "samples" / "kitchen-table.jpg")
    # When opened / Then the failure is shown, and the input still decodes
    browser.get(page.as_uri())
    failure = browser.find_element("id", "failure").text
    assert failure == "not_an_image: s3://b/inputs/notes.jpg is not a JPEG"
    assert browser.find_element("id", "status").text == "FAILED"
    loaded = images_as_loaded(browser)
    assert len(loaded) == 1
    assert loaded[0]["width"] > 0
    ARTIFACTS.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(ARTIFACTS / "report-failed.png"))
