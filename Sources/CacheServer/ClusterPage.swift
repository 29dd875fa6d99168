/// The cluster page a node serves at `/ui`: one HTML document and one script, both in the binary
/// (no build step, no CDN: it works offline). Neither holds data; the script reads the node's feed
/// (`/ui/events`, which needs a `read` token when tokens are on) and asks for the token itself.
enum ClusterPage {
    enum Asset: Equatable {
        case html
        case script

        var bytes: [UInt8] {
            switch self {
            case .html: ClusterPage.htmlBytes
            case .script: ClusterPage.scriptBytes
            }
        }

        var contentType: StaticString {
            switch self {
            case .html: "text/html; charset=utf-8"
            case .script: "text/javascript; charset=utf-8"
            }
        }
    }

    static let htmlBytes = Array(html.utf8)
    static let scriptBytes = Array(script.utf8)

    /// Sent with both assets: only this node's own script and feed, no framing, nothing cached, no
    /// referrer (a member's link carries nothing of the page's).
    static let headers: StaticString = """
        \r\ncontent-security-policy: default-src 'none'; script-src 'self'; connect-src 'self'; \
        style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; \
        form-action 'none'\r\nx-content-type-options: nosniff\r\nreferrer-policy: no-referrer\r\n\
        cache-control: no-store
        """

    static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>swift-cache · cluster</title>
        <link rel="icon" href="data:,">
        <style>
          :root { --ink: #1d2330; --muted: #6b7280; --line: #e5e7eb; --card: #fff; --back: #f5f6f8; }
          * { box-sizing: border-box; }
          body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--back); }
          header { display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; padding: 12px 20px; background: var(--ink); color: #fff; }
          header h1 { font-size: 17px; margin: 0; }
          header .facts { color: #cbd5e1; font-size: 13px; }
          header .facts b { color: #fff; font-weight: 600; }
          #connection { margin-left: auto; padding: 2px 10px; border-radius: 10px; font-size: 12px; background: #6b7280; }
          #connection[data-state="live"] { background: #15803d; }
          #connection[data-state="refused"] { background: #b91c1c; }
          header button { font: inherit; font-size: 12px; }
          main { display: grid; grid-template-columns: minmax(0, 2fr) minmax(280px, 1fr); gap: 16px; padding: 16px 20px; }
          section.panel { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
          section.panel h2 { font-size: 15px; margin: 0 0 8px; display: flex; gap: 8px; align-items: baseline; }
          section.panel h2 small { color: var(--muted); font-weight: normal; }
          .wide { grid-column: 1 / -1; }
          table { border-collapse: collapse; width: 100%; }
          th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
          th { color: var(--muted); font-weight: 500; font-size: 12px; }
          td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
          table.compact td, table.compact th { padding: 3px 6px; }
          .badge { padding: 1px 8px; border-radius: 9px; font-size: 12px; color: #fff; background: #6b7280; }
          .badge.alive { background: #15803d; } .badge.suspect { background: #b45309; } .badge.dead { background: #b91c1c; } .badge.left { background: #6b7280; }
          tr[data-health="down"] td { background: #fef2f2; }
          .unreachable { color: #b91c1c; font-size: 12px; }
          .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }
          .me, .quiet { color: var(--muted); }
          #ring-box { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
          #ring { width: 220px; height: 220px; }
          #ring path { stroke: #fff; stroke-width: 0.5; }
          .ring-count { font-size: 28px; font-weight: 600; fill: var(--ink); }
          .ring-label { font-size: 11px; fill: var(--muted); }
          #ring-legend { list-style: none; padding: 0; margin: 0; }
          #nodes { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
          section.node { border: 1px solid var(--line); border-radius: 8px; padding: 8px 12px; }
          section.node h3 { font-size: 14px; margin: 0 0 6px; display: flex; align-items: center; }
          section.node .wal { margin-left: auto; font-weight: normal; font-size: 12px; color: var(--muted); }
          .chart-box h4 { margin: 6px 0 0; font-size: 12px; font-weight: 500; color: var(--muted); }
          .chart { width: 100%; height: 48px; background: #fafafa; border-radius: 4px; }
          .chart .series { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
          .chart .limit { stroke: #b91c1c; stroke-dasharray: 4 3; vector-effect: non-scaling-stroke; }
          .labels { display: flex; gap: 10px; font-size: 12px; font-variant-numeric: tabular-nums; }
          .error { color: #b91c1c; font-size: 12px; }
          #events { list-style: none; padding: 0; margin: 0; max-height: 320px; overflow: auto; font-size: 13px; }
          #events li { padding: 3px 0; border-bottom: 1px solid var(--line); }
          #events time { color: var(--muted); font-variant-numeric: tabular-nums; }
          #token-panel { margin: 12px 20px 0; padding: 12px 16px; background: #fff7ed; border: 1px solid #fed7aa; border-radius: 8px; }
          #token-panel input { width: 360px; max-width: 100%; font: inherit; padding: 4px 6px; }
          #action-message[data-ok="no"] { color: #b91c1c; }
          @media (max-width: 900px) { main { grid-template-columns: 1fr; } }
        </style>
        </head>
        <body>
        <header>
          <h1>swift-cache cluster</h1>
          <span class="facts">served by <b id="served-by">…</b> · ring <b id="ring-version">…</b> · updated <b id="updated">…</b></span>
          <span id="connection" data-state="connecting">connecting</span>
          <button type="button" id="token-button">Token…</button>
        </header>
        <div id="token-panel" hidden>
          <form id="token-form">
            <p id="token-message"></p>
            <input id="token-input" type="password" autocomplete="off" placeholder="client token (TOKENS_FILE)">
            <button type="submit">Use token</button>
            <span class="quiet">kept in this tab only (sessionStorage)</span>
          </form>
        </div>
        <main>
          <section class="panel wide">
            <h2>Members <small id="members-summary"></small> <small id="action-message"></small></h2>
            <table id="members">
              <thead><tr><th>member</th><th>status</th><th>peer address</th><th>client address</th><th class="number">incarnation</th><th class="number">last contact</th><th class="number">ring share</th><th></th></tr></thead>
              <tbody id="members-body"></tbody>
            </table>
          </section>
          <section class="panel">
            <h2>Ring <small>primary owner of each arc of the key space</small></h2>
            <div id="ring-box">
              <svg id="ring" viewBox="0 0 220 220" role="img" aria-label="the hash ring"></svg>
              <ul id="ring-legend"></ul>
            </div>
            <div id="moves"></div>
          </section>
          <section class="panel">
            <h2>Recent events <small>as this node saw them</small></h2>
            <ul id="events"></ul>
          </section>
          <section class="panel wide">
            <h2>Nodes <small>the last minutes, one point a second</small></h2>
            <div id="nodes"></div>
          </section>
        </main>
        <script src="/ui/app.js"></script>
        </body>
        </html>
        """#
}
