"""Driving the console in a real headless Chromium (Debian's chromium + chromedriver, via Selenium).

Used by the end-to-end tests and by ``make screenshots``. Selenium is a dev dependency; importing
this module without it says so.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as exc:  # pragma: no cover - dev dependency
    raise ImportError("the console's browser driver needs selenium: pip install -e '.[dev]'") from exc

__all__ = ["Browser", "ConsoleError", "chromium"]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# Chromium on a machine without outside network: no background connections, no first-run.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
)


class ConsoleError(AssertionError):
    """The console showed an error where the walkthrough expected success (its text included)."""


@contextmanager
def chromium(lang: str = "en-US", width: int = 1360, height: int = 960) -> Iterator[Browser]:
    """A headless Chromium asking for ``lang`` (``zh-CN`` makes the console Chinese by default)."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        raise RuntimeError("Chromium is missing: run scripts/install-browser.sh (make test does)")
    profile = tempfile.mkdtemp(prefix="confide-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--lang={lang}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    def __init__(self, driver: Any, timeout: float = 30.0) -> None:
        self.driver, self.timeout = driver, timeout

    # -- finding -----------------------------------------------------------------------------------
    def sel(self, testid: str) -> str:
        return f'[data-testid="{testid}"]'

    def wait(self, css: str, timeout: float | None = None) -> WebElement:
        try:
            el: WebElement = WebDriverWait(self.driver, timeout or self.timeout).until(
                ec.visibility_of_element_located((By.CSS_SELECTOR, css))
            )
        except TimeoutException:
            raise ConsoleError(f"{css} did not appear; the page shows: {self.page_text()[:800]}") from None
        return el

    def by(self, testid: str, timeout: float | None = None) -> WebElement:
        return self.wait(self.sel(testid), timeout)

    def all(self, css: str) -> list[WebElement]:
        found: list[WebElement] = self.driver.find_elements(By.CSS_SELECTOR, css)
        return found

    def page_text(self) -> str:
        try:
            return str(self.driver.find_element(By.TAG_NAME, "body").text)
        except Exception:
            return ""

    # -- acting ------------------------------------------------------------------------------------
    def open(self, url: str) -> None:
        self.driver.get(url)

    def go(self, hash_: str, page: str) -> None:
        """Navigate inside the console and wait for the page (``data-testid=page-<page>``) to load."""
        self.driver.execute_script(
            "if (location.hash === arguments[0]) window.confideRoute(); else location.hash = arguments[0];",
            hash_,
        )
        self.loaded(page)

    def loaded(self, page: str) -> None:
        """Wait until the page ``page`` has rendered (not loading); raise with its error if it failed."""
        deadline = time.monotonic() + self.timeout
        text = ""
        while time.monotonic() < deadline:
            err = self.all(self.sel("page-error"))
            if err:
                raise ConsoleError(f"page {page}: {err[0].text}")
            mains = self.all(self.sel(f"page-{page}"))
            try:
                text = mains[0].text.strip() if mains else ""
                if mains and text and not text.endswith(("加载中…", "Loading…")):
                    return
            except StaleElementReferenceException:
                pass
            time.sleep(0.1)
        raise ConsoleError(f"page {page} did not load: {text[:300] or self.page_text()[:300]}")

    def click(self, testid: str, within: WebElement | None = None) -> None:
        el = within.find_element(By.CSS_SELECTOR, self.sel(testid)) if within else self.by(testid)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
        el.click()

    def fill(self, testid: str, text: str, within: WebElement | None = None) -> None:
        el = within.find_element(By.CSS_SELECTOR, self.sel(testid)) if within else self.by(testid)
        el.clear()
        el.send_keys(text)

    def choose(self, testid: str, value: str) -> None:
        Select(self.by(testid)).select_by_value(value)

    def notice(self, within: WebElement | None = None, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the notice in ``within`` (or the page) to say something: (kind, text)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            boxes = (
                within.find_elements(By.CSS_SELECTOR, self.sel("notice"))
                if within
                else self.all(self.sel("notice"))
            )
            for box in boxes:
                kind = (box.get_attribute("class") or "").replace("notice", "").strip()
                if kind in ("ok", "fail") and box.text.strip():
                    return kind, str(box.text)
            time.sleep(0.1)
        raise ConsoleError(f"no notice appeared; the page shows: {self.page_text()[:800]}")

    def expect_ok(self, within: WebElement | None = None, timeout: float | None = None) -> str:
        kind, text = self.notice(within, timeout)
        if kind != "ok":
            raise ConsoleError(text)
        return text

    def sign_in(self, console_url: str, key: Path, page: str = "catalog") -> None:
        """Sign in with the key file (signing out whoever was signed in at this console)."""
        self.open(console_url + "#/signin")
        if self.all(self.sel("signout")):
            self.click("signout")
            deadline = time.monotonic() + self.timeout
            while self.all(self.sel("whoami")) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.loaded("signin")
        for attempt in range(3):  # the form may be drawn again once more while sign-out settles
            try:
                self.wait('input[type="file"]').send_keys(str(key))
                self.click("signin")
                break
            except StaleElementReferenceException:
                if attempt == 2:
                    raise
                time.sleep(0.2)
        self.loaded(page)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        height = self.driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight, 900)"
        )
        self.driver.set_window_size(1360, min(int(height) + 40, 4000))
        self.driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.2)
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(1360, 960)

    def console_errors(self) -> list[str]:
        """Severe messages in the browser's console (favicon misses aside)."""
        logs = self.driver.get_log("browser")
        return [e["message"] for e in logs if e["level"] == "SEVERE" and "favicon" not in e["message"]]
