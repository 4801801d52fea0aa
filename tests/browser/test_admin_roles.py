"""The administrator's user pages in headless Chromium, driven as an administrator does: create a user,
change that user's roles with a reason and the e-signature, see it saved; on one's own page no role
change is offered, and a role change of one's own account sent anyway is refused in words, with
nothing changed."""
from __future__ import annotations

from typing import Any

from selenium.webdriver.common.by import By

from tests.browser.floor import click_and_wait, flashes, log_in

ROLES_FORM = "form[action$='/roles']"


def _open_user(browser: Any, served: dict[str, Any], username: str) -> None:
    browser.get(served["base"] + "/admin/users")
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, username))


def _roles_shown(browser: Any) -> str:
    return browser.find_element(By.XPATH, "//dl[@class='facts']/dt[normalize-space()='Roles']"
                                          "/following-sibling::dd[1]").text


def _fill_roles_form(browser: Any, form: Any, roles: set[str], reason: str, password: str) -> None:
    for box in form.find_elements(By.NAME, "roles"):
        if box.is_selected() != (box.get_attribute("value") in roles):
            browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
            box.click()
    form.find_element(By.NAME, "reason").send_keys(reason)
    form.find_element(By.NAME, "sign_password").send_keys(password)


def test_an_administrator_changes_another_users_roles_e_signed_but_never_their_own(browser, served):
    try:
        _drive(browser, served)
    finally:
        # the refused changes' 422 and 409 answers are logged by the browser: read them out, so that the
        # page audits of the next tests on this shared browser start from a clean console
        browser.get_log("browser")


def _drive(browser: Any, served: dict[str, Any]) -> None:
    admin = served["users"]["admin"]
    log_in(browser, served, "admin")

    # a new user, to change without touching the floor's users
    browser.get(served["base"] + "/admin/users")
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "New user"))
    browser.find_element(By.NAME, "username").send_keys("new-analyst")
    browser.find_element(By.NAME, "full_name").send_keys("Nora Analyst")
    browser.find_element(By.NAME, "password").send_keys("first-password-2026")
    browser.find_element(By.CSS_SELECTOR, "input[name=roles][value=operator]").click()
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Create user']"))
    assert any("new-analyst created" in f for f in flashes(browser))
    assert _roles_shown(browser) == "operator"

    # the administrator's e-signature carries their own user ID, filled in; a wrong password saves nothing
    form = browser.find_element(By.CSS_SELECTOR, ROLES_FORM)
    assert form.find_element(By.NAME, "sign_username").get_attribute("value") == admin
    _fill_roles_form(browser, form, {"qc_analyst"}, "Moved to the QC laboratory", "not-the-password")
    click_and_wait(browser, form.find_element(By.XPATH, ".//button[normalize-space()='Sign and save roles']"))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Saved." not in page and "password" in page.lower()
    _open_user(browser, served, "new-analyst")
    assert _roles_shown(browser) == "operator"

    form = browser.find_element(By.CSS_SELECTOR, ROLES_FORM)
    _fill_roles_form(browser, form, {"qc_analyst"}, "Moved to the QC laboratory", served["password"])
    click_and_wait(browser, form.find_element(By.XPATH, ".//button[normalize-space()='Sign and save roles']"))
    assert "Saved." in flashes(browser)
    assert _roles_shown(browser) == "qc_analyst"
    change = browser.find_element(By.ID, "role-changes").text  # the signed change, with its reason
    assert "operator → qc_analyst" in change and "Moved to the QC laboratory" in change
    assert f"Alex Admin ({admin})" in change
    target_page = browser.current_url

    # one's own page: no role change offered, and why
    _open_user(browser, served, admin)
    own_page = browser.current_url
    assert not browser.find_elements(By.CSS_SELECTOR, ROLES_FORM)
    note = browser.find_element(By.ID, "own-account").text
    assert "cannot change the roles or status of your own account" in note
    assert _roles_shown(browser) == "admin"

    # a role change of one's own account sent anyway (the other user's form pointed at one's own account)
    browser.get(target_page)
    form = browser.find_element(By.CSS_SELECTOR, ROLES_FORM)
    own_action = own_page.rstrip("/") + "/roles"
    browser.execute_script("arguments[0].setAttribute('action', arguments[1]);", form, own_action)
    _fill_roles_form(browser, form, {"admin", "qa"}, "Granting myself QA", served["password"])
    click_and_wait(browser, form.find_element(By.XPATH, ".//button[normalize-space()='Sign and save roles']"))
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "You cannot change the roles of your own account: another administrator must do it." in page
    assert "Saved." not in page
    browser.get(own_page)
    assert _roles_shown(browser) == "admin"
    assert not browser.find_elements(By.ID, "role-changes")
    browser.get(target_page)
    assert _roles_shown(browser) == "qc_analyst"
