"""The cluster page (/ui) in a real browser against real nodes."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect

from conftest import Cluster

READ = "read-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"


def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A page at `url`, and the console errors and uncaught exceptions it reports."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"exception: {error}"))
    page.goto(url)
    return page, problems


def put(address: str, key: str, value: str) -> None:
    body = json.dumps({"key": key, "value": value}).encode()
    request = urllib.request.Request(f"http://{address}/put", data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def member_row(page: Page, member: str) -> Locator:
    return page.locator(f'#members-body tr[data-member="{member}"]')


def test_the_page_shows_the_cluster_and_a_member_going_down_and_back(
    cluster: Cluster, browser: Browser, screenshots: Path
) -> None:
    nodes = cluster.start(3)
    # Some traffic, so that the charts have something to draw.
    for index in range(60):
        put(nodes[index % 3].address, f"k{index}", f"v{index}")
    page, problems = open_page(browser, f"http://{nodes[0].address}/ui")

    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=10_000)
    expect(page.locator('#members-body tr[data-status="alive"]')).to_have_count(3, timeout=10_000)
    for node in nodes:
        expect(member_row(page, node.node_id)).to_have_attribute("data-health", "up")
    # The ring: arcs drawn for the three owners, each with its share in the legend.
    expect(page.locator("#ring-legend li")).to_have_count(3)
    owners = set(page.locator("#ring path").evaluate_all("paths => paths.map(p => p.dataset.owner)"))
    assert owners == {"n0", "n1", "n2"}
    # Every node's charts, once two readings of its /stats are in.
    expect(page.locator('section.node [data-chart="latency"]')).to_have_count(3, timeout=10_000)
    page.screenshot(path=str(screenshots / "cluster-page.png"), full_page=True)

    killed = nodes[2]
    killed.kill()
    started = time.monotonic()
    expect(member_row(page, killed.node_id)).to_have_attribute("data-health", "down", timeout=5_000)
    went_down = time.monotonic() - started
    expect(member_row(page, killed.node_id)).to_have_attribute("data-status", "dead", timeout=15_000)
    expect(page.locator("#events li", has_text=f"{killed.node_id} dead")).to_have_count(1, timeout=5_000)
    page.screenshot(path=str(screenshots / "cluster-page-member-down.png"), full_page=True)

    killed.restart()
    expect(member_row(page, killed.node_id)).to_have_attribute("data-health", "up", timeout=15_000)
    expect(member_row(page, killed.node_id)).to_have_attribute("data-status", "alive")
    assert problems == [], problems
    assert went_down < 5, went_down


def test_a_join_shows_what_moves_where(cluster: Cluster, browser: Browser, screenshots: Path) -> None:
    nodes = cluster.start(2)
    page, problems = open_page(browser, f"http://{nodes[0].address}/ui")
    expect(page.locator('#members-body tr[data-status="alive"]')).to_have_count(2, timeout=10_000)
    expect(page.locator("#moves")).to_contain_text("No ring change")

    cluster.start(1)  # n2 joins: a third of the key space moves to it
    moves = page.locator("#moves")
    expect(moves.locator("p[data-active]")).to_be_visible(timeout=15_000)
    expect(moves).to_contain_text("of the key space changes replicas")
    joined = moves.locator("tbody tr", has_text="n2")
    expect(joined).to_have_count(1)
    # Its share before is 0 %, and what it receives is what it owns after.
    cells = joined.locator("td").all_inner_texts()
    assert cells[1] == "0.0 %" and cells[3] == cells[2] and cells[3] != "0.0 %", cells
    expect(page.locator("#events li", has_text="changed: +n2")).to_have_count(1)
    expect(page.locator("#ring-legend li")).to_have_count(3)
    page.screenshot(path=str(screenshots / "cluster-page-join.png"), full_page=True)
    assert problems == [], problems


def test_the_page_needs_a_read_token_and_its_operations_an_admin_one(
    cluster: Cluster, browser: Browser, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"read {READ}\nadmin {ADMIN}\n")
    node = cluster.start(1, TOKENS_FILE=str(tokens))[0]
    page, problems = open_page(browser, f"http://{node.address}/ui")

    # Without a token the feed is refused and the page asks for one; nothing of the cluster shows.
    expect(page.locator("#token-panel")).to_be_visible(timeout=10_000)
    expect(page.locator("#connection")).to_have_attribute("data-state", "refused")
    expect(page.locator("#members-body tr")).to_have_count(0)

    page.fill("#token-input", READ)
    page.click("#token-form button[type=submit]")
    expect(member_row(page, node.node_id)).to_have_attribute("data-status", "alive", timeout=10_000)

    # A read token may look, not act: leave is refused with the node's own words.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('button[data-action="leave"]')
    expect(page.locator("#action-message")).to_contain_text("403", timeout=5_000)
    expect(page.locator("#action-message")).to_contain_text("needs 'admin'")

    # An admin token reaches the operation (a node alone has no one to hand its keys to: 409).
    page.click("#token-button")
    page.fill("#token-input", ADMIN)
    page.click("#token-form button[type=submit]")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=10_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click('button[data-action="leave"]')
    expect(page.locator("#action-message")).to_contain_text("409", timeout=5_000)
    # The refusals above are the page's own doing: the browser logs each refused fetch.
    assert [problem for problem in problems if "status of 40" not in problem] == [], problems
