"""The gallery page in headless Chromium: every photo renders, filters filter.

The collection holds hostile file names and a group photo (happy, happy, sad;
the sad face largest); which photo each filter shows is taken from
fer.gallery.filters, the rule `fer filter` uses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

import pytest

import gallery_fixtures as gf
from fer import labels as labels_lib
from fer.gallery import analyze, detect, filters, index, scan, web
from test_gallery_web import HOSTILE_NAMES, put_group_photo

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1600")
SCREENSHOT = os.environ.get("FER_GALLERY_SCREENSHOT")  # Set to keep a PNG of the page.


def _find(*names):
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _find("chromium", "chromium-browser"), _find("chromedriver")
    if not binary or not driver_path:
        pytest.fail("headless Chromium is needed: apt-get install chromium chromium-driver")
    profile = tempfile.mkdtemp(prefix="fer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """The index, each photo's id -> its faces, the group photo's id and a temp dir."""
    tmp = tmp_path_factory.mktemp("gallery")
    root = tmp / "photos"
    gf.write_good_photos(str(root))
    for i in range(3):  # A few more faces, so that labels repeat.
        gf.save(str(root / f"extra_{i}.jpg"),
                gf.landscape(gf.astronaut()[:, :, ::-1] if i == 1 else gf.astronaut(),
                             seed=20 + i), quality=90)
    for name in HOSTILE_NAMES:
        shutil.copyfile(root / "astronaut.jpg", root / name)
    db = str(tmp / "index.sqlite")
    conn = index.connect(db)
    analyzer = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                     thumbnail_side=scan.THUMBNAIL_SIDE)
    scan.scan(str(root), conn, lambda: analyzer, "m", workers=1, progress=False)
    group = put_group_photo(conn, str(root / "group.jpg"))
    faces = {p["id"]: p["faces"] for p in index.photos(conn)}
    conn.close()
    return db, faces, group, tmp


def _shown(driver) -> set[int]:
    return set(driver.execute_script(
        "return Array.from(document.querySelectorAll('figure.photo'))"
        ".filter(f => !f.hidden).map(f => +f.dataset.id)"))


def _shows(driver, expected: set[int]) -> bool:
    """Whether the page comes to show exactly `expected` (hashchange is asynchronous)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(driver, 5).until(lambda d: _shown(d) == expected)
        return True
    except TimeoutException:
        return False


def _expected(faces, label, mode) -> set[int]:
    return {i for i, fs in faces.items()
            if label == "all" or label in filters.photo_filters(fs, mode)}


def _check_page(driver, faces, group):
    from selenium.webdriver.common.by import By

    figures = driver.find_elements(By.CSS_SELECTOR, "figure.photo")
    assert len(figures) == len(faces)
    names = {f.find_element(By.CLASS_NAME, "name").get_attribute("textContent")
             for f in figures}
    assert set(HOSTILE_NAMES) <= names
    assert driver.title == f"fer gallery: {len(faces)} photos"
    for fig in figures:  # Thumbnails load lazily: bring each into view.
        driver.execute_script("arguments[0].scrollIntoView()", fig)
    driver.execute_script("window.scrollTo(0, 0)")
    rendered = driver.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        " && document.images.length")
    assert rendered == len(faces), "some thumbnails did not render"
    if SCREENSHOT:
        driver.save_screenshot(SCREENSHOT)
    for fig in figures:
        photo_faces = faces[int(fig.get_attribute("data-id"))]
        caption = fig.find_element(By.TAG_NAME, "figcaption").text
        if not photo_faces:
            assert "no face" in caption
            continue
        assert all(labels_lib.EMOJI[f["label"]] in caption for f in photo_faces), caption
        # Each face is labelled at its box with its emoji and percentage.
        tags = [t.get_attribute("textContent")
                for t in fig.find_elements(By.CSS_SELECTOR, ".box .tag")]
        assert tags == [f"{labels_lib.EMOJI[f['label']]}\u00a0"
                        f"{round(100 * f['confidence'])}%" for f in photo_faces]
        if len(photo_faces) > 1:  # No emoji wraps away from its percentage.
            spans = fig.find_elements(By.CSS_SELECTOR, "figcaption .face")
            assert [s.get_attribute("textContent") for s in spans] == tags
            assert all(driver.execute_script(
                "return arguments[0].getClientRects().length", s) == 1 for s in spans)
    # Each filter, in each mode, shows exactly the photos the Python rule picks.
    buttons = driver.find_elements(By.CSS_SELECTOR, "#filters button")
    labels = [b.get_attribute("data-filter") for b in buttons]
    assert labels[0] == "all" and labels[-1] == filters.NO_FACE
    assert {analyze.MULTIPLE, "happy", "sad"} <= set(labels)
    for mode_button in driver.find_elements(By.CSS_SELECTOR, "#modes button"):
        mode_button.click()
        mode = mode_button.get_attribute("data-mode")
        for button in buttons[1:] + buttons[:1]:
            button.click()
            label = button.get_attribute("data-filter")
            assert _shown(driver) == _expected(faces, label, mode), (label, mode)
            assert "active" in button.get_attribute("class")
            assert f"label={label}" in driver.current_url
    assert group in _expected(faces, "sad", "largest") - _expected(faces, "happy", "largest")
    # Back returns to the previous filter.
    buttons[labels.index("happy")].click()
    buttons[labels.index("sad")].click()
    driver.back()
    assert _shows(driver, _expected(faces, "happy", "largest"))


def _check_url_state(driver, base, faces):
    """A bookmarked filter (query or hash) opens on that filter."""
    for fragment, label, mode in (("#label=happy", "happy", "any"),
                                  ("#label=sad&mode=largest", "sad", "largest"),
                                  ("#label=none&mode=all", filters.NO_FACE, "all")):
        driver.get(base + fragment)
        assert _shows(driver, _expected(faces, label, mode)), fragment


def test_served_page_renders_every_photo_and_filters(browser, gallery):
    db, faces, group, _ = gallery
    server = web.make_server(db, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        browser.get(base)
        _check_page(browser, faces, group)
        browser.get(base + "?label=happy&mode=all")
        assert _shows(browser, _expected(faces, "happy", "all"))
        _check_url_state(browser, base, faces)
    finally:
        server.shutdown()
        server.server_close()


def test_static_page_renders_every_photo_and_filters(browser, gallery):
    db, faces, group, tmp = gallery
    page = web.write_static(db, str(tmp / "site"))
    browser.get("file://" + page)
    _check_page(browser, faces, group)
    _check_url_state(browser, "file://" + page, faces)
