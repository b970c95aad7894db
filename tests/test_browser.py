"""The explorer in a real browser: headless Chromium driven by Selenium draws a stroke on the
pad, sees the probabilities and the feature maps change, clicks a unit and sees its top-9 and
its projection. Skips, with the reason, when Selenium, Chromium or chromedriver is missing.

``TINYCONV_SCREENSHOT=/path.png`` also saves the final screenshot there (besides tmp_path).
"""

import os
import shutil
import threading

import pytest

import tinyconv as tc
from tinyconv.explore.api import Explorer
from tinyconv.explore.server import make_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
    pytest.skip(f"no system browser: needs {CHROMIUM} and {DRIVER} "
                "(Debian: apt-get install chromium chromium-driver)", allow_module_level=True)

WAIT = 120      # seconds; generous, as a busy machine compiles numba kernels on first use


@pytest.fixture(scope="module")
def url():
    images, labels = tc.load_mnist("bundled-test")
    explorer = Explorer(tc.pretrained("mnist"), tc.to_float(images)[:100], labels[:100])
    server = make_server(explorer, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1500,1100",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        options.add_argument("--no-sandbox")          # Chromium refuses to run as root without
    service = webdriver.ChromeService(executable_path=DRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    yield driver
    driver.quit()


def counter(driver, element_id, name):
    return int(driver.find_element(By.ID, element_id).get_attribute(f"data-{name}"))


def grid_picture(driver):
    """Every feature map's pixels, as one string (changes when any map changes)."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('.map')).map(c => c.toDataURL()).join()")


def test_draw_see_the_maps_change_click_a_unit(browser, url, tmp_path):
    wait = WebDriverWait(browser, WAIT)
    browser.get(url)
    # the page asks for /api/info, builds one canvas per map, and sends the blank pad
    wait.until(lambda d: counter(d, "probs", "updates") >= 1)
    maps = browser.find_elements(By.CSS_SELECTOR, ".map")
    assert len(maps) == 16 * 3 + 32 * 3 + 64 * 3
    probabilities_before = browser.find_element(By.ID, "probs").text
    grid_before = grid_picture(browser)
    updates_before = counter(browser, "layers", "updates")

    # one stroke: a vertical line down the middle of the pad, like a 1
    pad = browser.find_element(By.ID, "pad")
    strokes = ActionChains(browser).move_to_element_with_offset(pad, 0, -90).click_and_hold()
    for _ in range(9):
        strokes = strokes.move_by_offset(0, 20)
    strokes.release().perform()
    ink = browser.execute_script("return state.image.reduce((a, b) => a + b, 0)")
    assert ink > 10
    wait.until(lambda d: counter(d, "layers", "updates") > updates_before
               and not d.execute_script("return state.inFlight || state.again"))
    assert browser.find_element(By.ID, "probs").text != probabilities_before
    assert grid_picture(browser) != grid_before

    # click a unit of conv2: its receptive field, top-9 and projection appear
    unit = browser.find_element(By.CSS_SELECTOR, ".map[data-l='4'][data-k='3']")
    ready = counter(browser, "unit", "ready")
    unit.click()
    wait.until(lambda d: counter(d, "unit", "ready") > ready)
    top9 = browser.find_elements(By.CSS_SELECTOR, "#top9 canvas")
    assert len(top9) == 9
    call = browser.find_element(By.ID, "projection-call").text
    assert call.startswith("tc.project(model, x, 'conv2', 3, idx=(")
    assert "tc.receptive_field(model, 'conv2').box" in browser.find_element(By.ID, "rf-call").text
    # the projection is drawn: not one flat colour
    colours = browser.execute_script("""
        const c = document.getElementById('projection');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        const seen = new Set();
        for (let i = 0; i < d.length; i += 4) seen.add(d[i] + ',' + d[i + 1] + ',' + d[i + 2]);
        return seen.size;""")
    assert colours > 1

    # occlusion on request
    browser.find_element(By.ID, "occlude").click()
    wait.until(lambda d: d.find_element(By.ID, "occ-call").text.startswith("tc.occlusion("))
    assert browser.find_elements(By.CSS_SELECTOR, "#occ-classes td")
    assert browser.find_element(By.ID, "status").text == ""            # no error shown

    shot = tmp_path / "explorer.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("TINYCONV_SCREENSHOT"):
        browser.save_screenshot(os.environ["TINYCONV_SCREENSHOT"])
