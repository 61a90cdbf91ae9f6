"""The gallery page in headless Chromium: every photo renders, filters filter."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

import pytest

import gallery_fixtures as gf
from fer import labels as labels_lib
from fer.gallery import analyze, detect, index, scan, web

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
    tmp = tmp_path_factory.mktemp("gallery")
    root = tmp / "photos"
    gf.write_good_photos(str(root))
    for i in range(3):  # A few more faces, so that labels repeat.
        gf.save(str(root / f"extra_{i}.jpg"),
                gf.landscape(gf.astronaut()[:, :, ::-1] if i == 1 else gf.astronaut(),
                             seed=20 + i), quality=90)
    db = str(tmp / "index.sqlite")
    conn = index.connect(db)
    analyzer = analyze.PhotoAnalyzer(detect.BlazeFaceDetector(), gf.FakeClassifier(),
                                     thumbnail_side=320)
    scan.scan(str(root), conn, lambda: analyzer, "m", workers=1, progress=False)
    labels = {p["id"]: p["label"] or web.NO_FACE for p in index.photos(conn)}
    conn.close()
    return db, labels, tmp


def _check_page(driver, labels):
    from selenium.webdriver.common.by import By

    figures = driver.find_elements(By.CSS_SELECTOR, "figure.photo")
    assert len(figures) == len(labels)
    for fig in figures:  # Thumbnails load lazily: bring each into view.
        driver.execute_script("arguments[0].scrollIntoView()", fig)
    driver.execute_script("window.scrollTo(0, 0)")
    rendered = driver.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        " && document.images.length")
    assert rendered == len(labels), "some thumbnails did not render"
    # Captions: emoji + label + confidence for one face, nothing pretends for none.
    for fig in figures:
        label = labels[int(fig.get_attribute("data-id"))]
        caption = fig.find_element(By.TAG_NAME, "figcaption").text
        if label == web.NO_FACE:
            assert "no face" in caption
        else:
            assert labels_lib.EMOJI[label] in caption and "%" in caption, caption
    # Each filter shows exactly that label's photos; All shows every one again.
    buttons = driver.find_elements(By.CSS_SELECTOR, "#filters button")
    filters = [b.get_attribute("data-filter") for b in buttons]
    assert filters[0] == "all" and web.NO_FACE not in filters
    assert set(filters[1:]) == set(labels.values()) - {web.NO_FACE}
    for button in buttons[1:] + buttons[:1]:
        button.click()
        wanted = button.get_attribute("data-filter")
        shown = {int(f.get_attribute("data-id")) for f in figures if f.is_displayed()}
        expected = {i for i, lab in labels.items() if wanted in ("all", lab)}
        assert shown == expected, wanted
        assert "active" in button.get_attribute("class")


def test_served_page_renders_every_photo_and_filters(browser, gallery):
    db, labels, _ = gallery
    server = web.make_server(db, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/")
        _check_page(browser, labels)
        if SCREENSHOT:
            browser.save_screenshot(SCREENSHOT)
    finally:
        server.shutdown()
        server.server_close()


def test_static_page_renders_every_photo_and_filters(browser, gallery):
    db, labels, tmp = gallery
    page = web.write_static(db, str(tmp / "site"))
    browser.get("file://" + page)
    _check_page(browser, labels)
