"""The page passes an axe-core scan (WCAG 2.0/2.1 A and AA, and axe's best practices) with no
violations, at desktop and at phone width, in each state a person sees: as loaded, with an
inbox shown, with the live inbox on and a hello shown in it, with a name claimed and its token
shown, and with an error next to a field.

axe-core comes from the PyPI package axe-playwright-python (which ships axe.min.js); it is
injected into the page with the page's Content-Security-Policy bypassed for this test only, since
the policy rightly refuses scripts the site did not serve.
"""

import json
import uuid
from contextlib import contextmanager
from pathlib import Path

import axe_playwright_python
import pytest
from playwright.sync_api import expect

AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
WIDTHS = {"desktop": {"width": 1200, "height": 900}, "phone": {"width": 390, "height": 844}}


def violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    results = page.evaluate(
        "rules => axe.run(document, {runOnly: {type: 'tag', values: rules}, resultTypes: ['violations']})",
        RULES,
    )
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"],
         "nodes": [node["target"] for node in v["nodes"]][:5]}
        for v in results["violations"]
    ]


@contextmanager
def page_at(browser, width: str):
    """A page at one of WIDTHS, with the CSP bypassed so that axe can be injected."""
    context = browser.new_context(viewport=WIDTHS[width], is_mobile=width == "phone", bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_has_no_axe_violations(pod, browser, width):
    with page_at(browser, width) as page:
        page.goto(pod.url + "/")
        found = {"loaded": violations(page)}

        recipient = f"ada{uuid.uuid4().hex[:6]}"
        page.get_by_label("From", exact=True).fill("grace")
        page.get_by_label("To", exact=True).fill(recipient)
        page.get_by_role("button", name="Send hello").click()
        expect(page.locator("#send-result")).to_contain_text("stored")
        page.get_by_label("Name", exact=True).fill(recipient)
        page.get_by_role("button", name="Check inbox").click()
        expect(page.locator("#inbox-result li")).to_have_count(1)
        found["inbox shown"] = violations(page)

        page.get_by_label("Live inbox").check()
        expect(page.locator("#live-status")).to_contain_text("Connected")
        page.get_by_role("button", name="Send hello").click()  # grace to the recipient again
        expect(page.locator("#live-hellos li")).to_have_count(1)
        expect(page.locator("#live-announce")).to_contain_text("1 new hello")
        found["live inbox on, a hello shown"] = violations(page)

        page.get_by_label("Name to claim").fill(f"own{uuid.uuid4().hex[:6]}")
        page.get_by_role("button", name="Claim name").click()
        expect(page.locator("#claim-result")).to_contain_text("is yours")
        found["name claimed, token shown"] = violations(page)

        page.get_by_label("To", exact=True).fill("$bad")
        page.get_by_role("button", name="Send hello").click()
        expect(page.locator("#send-to-error")).to_be_visible()
        found["error shown"] = violations(page)
    found = {state: found_there for state, found_there in found.items() if found_there}
    assert not found, f"axe-core at {width} width:\n" + json.dumps(found, indent=1)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_public_page_without_its_info_panel_has_no_axe_violations(public_nginx, browser, width):
    """Shared on the internet (the `public` component), the page has no "This pod" panel."""
    with page_at(browser, width) as page:
        page.goto(public_nginx + "/")
        expect(page.locator("#info-title")).to_be_hidden()
        found = violations(page)
    assert not found, f"axe-core at {width} width on the public page:\n" + json.dumps(found, indent=1)
