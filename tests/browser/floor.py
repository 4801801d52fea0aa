"""What an operator does with a tablet, as selenium calls: log in, open a page, type, scan, save."""
from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 15


def set_viewport(driver: Any, width: int, height: int) -> None:
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def log_in(driver: Any, served: dict[str, Any], who: str) -> None:
    driver.get(served["base"] + "/login")  # cookies are deleted for the page's own site
    driver.delete_all_cookies()
    driver.get(served["base"] + "/login")
    driver.find_element(By.NAME, "username").send_keys(served["users"][who])
    driver.find_element(By.NAME, "password").send_keys(served["password"])
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(driver, WAIT).until(lambda d: "/login" not in d.current_url)


def mark_page(driver: Any) -> None:
    """Mark the loaded document, so that a later check can tell whether the browser navigated."""
    driver.execute_script("window.__same_page = true;")


def navigated(driver: Any) -> bool:
    return not driver.execute_script("return window.__same_page === true;")


def click_and_wait(driver: Any, element: Any) -> None:
    """Click a submit button and wait for the next page to load."""
    mark_page(driver)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()
    WebDriverWait(driver, WAIT).until(lambda d: navigated(d) and d.execute_script(
        "return document.readyState") == "complete")


def flashes(driver: Any) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".flash, .error-summary, .error-text")]


def field(driver: Any, name: str) -> Any:
    return driver.find_element(By.CSS_SELECTOR, f"#entries-form [name='{name}'], [form='entries-form'][name='{name}']")


def type_into(driver: Any, name: str, text: str) -> Any:
    element = field(driver, name)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.clear()
    element.send_keys(text)
    return element


def scan(driver: Any, element: Any, barcode: str) -> None:
    """A keyboard-wedge scanner: the barcode's characters, then Enter."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus();", element)
    element.clear()
    element.send_keys(barcode + Keys.ENTER)


def save_entries(driver: Any) -> None:
    click_and_wait(driver, driver.find_element(By.XPATH, "//button[normalize-space()='Save entries']"))
