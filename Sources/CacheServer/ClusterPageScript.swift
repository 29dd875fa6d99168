extension ClusterPage {
    /// The page's script (`/ui/app.js`): reads the feed with `fetch` (an `EventSource` cannot send
    /// the token), keeps the charts' points, and draws with plain DOM and SVG. No framework, no build.
    static let script = #"""
        "use strict";
        const state = { token: sessionStorage.getItem("cache-token") || "", history: {}, events: [], last: null, colors: {} };
        const palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
        const keepPoints = 300;
        const $ = (id) => document.getElementById(id);
        const svgNS = "http://www.w3.org/2000/svg";

        function element(tag, attributes, ...children) {
          const node = tag.startsWith("svg:") ? document.createElementNS(svgNS, tag.slice(4)) : document.createElement(tag);
          for (const [name, value] of Object.entries(attributes || {})) {
            if (value === undefined || value === null) continue;
            if (name === "text") node.textContent = value; else node.setAttribute(name, value);
          }
          for (const child of children) node.append(child);
          return node;
        }

        function colorOf(id) {
          if (!(id in state.colors)) state.colors[id] = palette[Object.keys(state.colors).length % palette.length];
          return state.colors[id];
        }

        function headers() {
          return state.token ? { Authorization: "Bearer " + state.token } : {};
        }

        function setConnection(text, kind) {
          const badge = $("connection");
          badge.textContent = text;
          badge.dataset.state = kind;
        }

        function showTokenForm(message) {
          $("token-panel").hidden = false;
          $("token-message").textContent = message;
        }

        $("token-form").addEventListener("submit", (event) => {
          event.preventDefault();
          state.token = $("token-input").value.trim();
          sessionStorage.setItem("cache-token", state.token);
          $("token-panel").hidden = true;
          connect();
        });
        $("token-button").addEventListener("click", () => showTokenForm("A token with the read role shows the cluster; admin also allows leave and forget."));

        let generation = 0;
        async function connect() {
          const mine = ++generation;
          setConnection("connecting", "connecting");
          try {
            const response = await fetch("/ui/events", { headers: headers(), cache: "no-store" });
            if (response.status === 401 || response.status === 403) {
              const body = await response.json().catch(() => ({}));
              setConnection("no access", "refused");
              showTokenForm(body.error || "this node needs a token");
              return;
            }
            if (!response.ok) throw new Error("the feed answered " + response.status);
            setConnection("live", "live");
            const reader = response.body.getReader();
            const decoder = new TextDecoder();
            let buffer = "";
            while (mine === generation) {
              const { value, done } = await reader.read();
              if (done) break;
              buffer += decoder.decode(value, { stream: true });
              let end;
              while ((end = buffer.indexOf("\n\n")) >= 0) {
                const block = buffer.slice(0, end);
                buffer = buffer.slice(end + 2);
                let name = "message", data = "";
                for (const line of block.split("\n")) {
                  if (line.startsWith("event: ")) name = line.slice(7);
                  else if (line.startsWith("data: ")) data += line.slice(6);
                }
                if (data) receive(name, JSON.parse(data));
              }
            }
          } catch (error) {
            console.info("feed interrupted:", error.message);
          }
          if (mine !== generation) return;
          setConnection("reconnecting", "connecting");
          setTimeout(() => { if (mine === generation) connect(); }, 1000);
        }

        function receive(name, feed) {
          if (name === "refused") {
            showTokenForm(feed.error);
            return;
          }
          if (name === "snapshot") {
            state.history = {};
            for (const [id, points] of Object.entries(feed.history || {})) state.history[id] = points.slice(-keepPoints);
            state.events = feed.events || [];
          } else {
            for (const [id, point] of Object.entries(feed.nodes || {})) {
              if (point.error) continue;
              const points = state.history[id] || (state.history[id] = []);
              points.push(point);
              if (points.length > keepPoints) points.splice(0, points.length - keepPoints);
            }
            state.events = state.events.concat(feed.events || []).slice(-200);
          }
          state.last = feed;
          render(feed);
        }

        function formatSeconds(seconds) {
          if (seconds === null || seconds === undefined) return "never";
          return seconds < 1 ? "now" : seconds.toFixed(1) + " s ago";
        }

        function formatBytes(bytes) {
          if (bytes === null || bytes === undefined) return "–";
          const units = ["B", "KiB", "MiB", "GiB", "TiB"];
          let value = bytes, unit = 0;
          while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
          return value.toFixed(unit === 0 ? 0 : 1) + " " + units[unit];
        }

        function render(feed) {
          $("served-by").textContent = feed.me;
          $("ring-version").textContent = feed.ring.version;
          $("updated").textContent = new Date(feed.time).toLocaleTimeString();
          renderMembers(feed);
          renderRing(feed);
          renderMoves(feed);
          renderNodes(feed);
          renderEvents();
        }

        function health(member, feed) {
          const node = (feed.nodes || {})[member.id];
          if (member.status === "left") return "left";
          if (member.status === "dead" || member.status === "suspect") return "down";
          if (node && node.error) return "down";
          return "up";
        }

        function renderMembers(feed) {
          const body = $("members-body");
          body.replaceChildren();
          for (const member of feed.members) {
            const node = (feed.nodes || {})[member.id];
            const condition = health(member, feed);
            const status = element("span", { class: "badge " + member.status, text: member.status });
            const statusCell = element("td", { class: "status" }, status);
            if (node && node.error && member.status !== "left") {
              statusCell.append(element("span", { class: "unreachable", title: node.error, text: " unreachable" }));
            }
            const link = member.client_address
              ? element("a", { href: location.protocol + "//" + member.client_address + "/ui", text: member.id })
              : element("span", { text: member.id });
            const actions = element("td", { class: "actions" });
            if (member.id === feed.me && member.status === "alive") {
              actions.append(element("button", { type: "button", "data-action": "leave", text: "Leave" }));
            }
            if (member.status === "dead") {
              actions.append(element("button", { type: "button", "data-action": "forget", "data-member": member.id, text: "Forget" }));
            }
            const row = element("tr", { "data-member": member.id, "data-health": condition, "data-status": member.status },
              element("td", {}, element("span", { class: "swatch", style: "background:" + colorOf(member.id) }), link,
                member.id === feed.me ? element("span", { class: "me", text: " (this node)" }) : ""),
              statusCell,
              element("td", { text: member.address }),
              element("td", { text: member.client_address || "–" }),
              element("td", { class: "number", text: String(member.incarnation) }),
              element("td", { class: "number", text: formatSeconds(member.last_contact_seconds) }),
              element("td", { class: "number", text: (member.ring_share * 100).toFixed(1) + " %" }),
              actions);
            body.append(row);
          }
          const alive = feed.members.filter((member) => member.status === "alive").length;
          $("members-summary").textContent = alive + " of " + feed.members.length + " alive";
        }

        function arc(cx, cy, outer, inner, start, end) {
          const point = (radius, angle) => [cx + radius * Math.sin(angle), cy - radius * Math.cos(angle)];
          const large = end - start > Math.PI ? 1 : 0;
          const [x1, y1] = point(outer, start), [x2, y2] = point(outer, end);
          const [x3, y3] = point(inner, end), [x4, y4] = point(inner, start);
          return `M${x1} ${y1}A${outer} ${outer} 0 ${large} 1 ${x2} ${y2}L${x3} ${y3}A${inner} ${inner} 0 ${large} 0 ${x4} ${y4}Z`;
        }

        function renderRing(feed) {
          const ring = feed.ring;
          const svg = $("ring");
          svg.replaceChildren();
          const count = ring.sectors.length;
          // Neighbouring sectors of one owner are drawn as one arc.
          let start = 0;
          for (let index = 1; index <= count; index++) {
            if (index < count && ring.sectors[index] === ring.sectors[start]) continue;
            const owner = ring.members[ring.sectors[start]];
            const path = element("svg:path", {
              d: arc(110, 110, 100, 64, (2 * Math.PI * start) / count, (2 * Math.PI * index) / count),
              fill: owner ? colorOf(owner) : "#ccc", "data-owner": owner || "",
            });
            path.append(element("svg:title", { text: (owner || "no owner") }));
            svg.append(path);
            start = index;
          }
          svg.append(element("svg:text", { x: 110, y: 106, "text-anchor": "middle", class: "ring-count", text: String(ring.members.length) }));
          svg.append(element("svg:text", { x: 110, y: 126, "text-anchor": "middle", class: "ring-label", text: "owners · rf " + ring.replication_factor }));
          const legend = $("ring-legend");
          legend.replaceChildren();
          for (const id of ring.members) {
            const member = feed.members.find((candidate) => candidate.id === id);
            legend.append(element("li", { "data-owner": id },
              element("span", { class: "swatch", style: "background:" + colorOf(id) }),
              id + " " + (member ? (member.ring_share * 100).toFixed(1) + " %" : "")));
          }
        }

        function renderMoves(feed) {
          const panel = $("moves");
          const moves = feed.moves;
          panel.replaceChildren();
          if (feed.leaving) {
            panel.append(element("p", { class: "leaving", text: "This node is leaving: " + feed.leaving.keys_to_hand_off + " keys to hand off." }));
          }
          if (!moves) {
            panel.append(element("p", { class: "quiet", text: "No ring change since this node started its feed." }));
            return;
          }
          const when = new Date(moves.time).toLocaleTimeString();
          panel.append(element("p", { "data-active": moves.active ? "yes" : "no",
            text: `Ring ${moves.from_version.slice(0, 8)} → ${moves.to_version.slice(0, 8)} at ${when}: ` +
              `${(moves.moved_share * 100).toFixed(1)} % of the key space changes replicas; ` +
              (moves.active ? `moving (${moves.handoff_backlog} keys in handoff)` : "done") }));
          const table = element("table", { class: "compact" },
            element("thead", {}, element("tr", {}, ...["member", "share before", "after", "receives", "gives up"].map((text) => element("th", { text })))));
          const body = element("tbody");
          for (const member of moves.members) {
            const percent = (value) => (value * 100).toFixed(1) + " %";
            body.append(element("tr", {},
              element("td", {}, element("span", { class: "swatch", style: "background:" + colorOf(member.id) }), member.id),
              element("td", { class: "number", text: percent(member.share_before) }),
              element("td", { class: "number", text: percent(member.share_after) }),
              element("td", { class: "number", text: percent(member.receives) }),
              element("td", { class: "number", text: percent(member.gives_up) })));
          }
          table.append(body);
          panel.append(table);
        }

        // A small line chart: one line per series, the newest value beside its name.
        function chart(title, series, options) {
          const width = 260, height = 64;
          const values = series.flatMap((line) => line.points.filter((value) => value !== null));
          const highest = Math.max(options.minimumTop || 0, ...values);
          // A limit far above the values would flatten them: it is drawn only when near, and named otherwise.
          const limitShown = options.limit && options.limit <= 2 * highest;
          const top = Math.max(highest, limitShown ? options.limit : 0) || 1;
          const svg = element("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", preserveAspectRatio: "none" });
          if (limitShown) {
            const y = height - (options.limit / top) * (height - 4);
            svg.append(element("svg:line", { x1: 0, x2: width, y1: y, y2: y, class: "limit" }));
          }
          for (const line of series) {
            const step = width / Math.max(1, keepPoints - 1);
            const offset = keepPoints - line.points.length;
            let path = "";
            line.points.forEach((value, index) => {
              if (value === null) return;
              const x = (offset + index) * step, y = height - 2 - (value / top) * (height - 4);
              path += (path ? "L" : "M") + x.toFixed(1) + " " + y.toFixed(1);
            });
            if (path) svg.append(element("svg:path", { d: path, stroke: line.color, class: "series" }));
          }
          const labels = element("div", { class: "labels" });
          for (const line of series) {
            const latest = line.points.length ? line.points[line.points.length - 1] : null;
            labels.append(element("span", { style: "color:" + line.color, text: line.name + " " + (latest === null ? "–" : options.format(latest)) }));
          }
          if (options.limit) {
            const latest = series[0].points[series[0].points.length - 1];
            const share = latest === null || latest === undefined ? "" : ((100 * latest) / options.limit).toFixed(1) + " % of ";
            labels.append(element("span", { class: "quiet", text: share + "limit " + options.format(options.limit) }));
          }
          return element("div", { class: "chart-box", "data-chart": options.key }, element("h4", { text: title }), svg, labels);
        }

        function renderNodes(feed) {
          const grid = $("nodes");
          grid.replaceChildren();
          const ids = feed.members.filter((member) => member.status !== "left").map((member) => member.id);
          for (const id of ids) {
            const points = state.history[id] || [];
            const latest = points[points.length - 1];
            const now = (feed.nodes || {})[id];
            const pick = (field) => points.map((point) => point[field] === undefined ? null : point[field]);
            const opsOf = (name) => points.map((point) => point.ops[name]);
            const number = (digits) => (value) => value.toFixed(digits);
            const card = element("section", { class: "node", "data-node": id },
              element("h3", {}, element("span", { class: "swatch", style: "background:" + colorOf(id) }), id,
                element("span", { class: "wal", text: latest ? "WAL " + latest.wal + (latest.wal_bytes !== null ? " · " + formatBytes(latest.wal_bytes) : "") : "" })));
            const member = feed.members.find((candidate) => candidate.id === id);
            if (now && now.error) card.append(element("p", { class: "error", text: "no figures: " + now.error }));
            else if (member && member.status === "dead") card.append(element("p", { class: "error", text: "dead: no figures since it went down" }));
            if (!latest) {
              card.append(element("p", { class: "quiet", text: "waiting for a second reading of its /stats" }));
              grid.append(card);
              continue;
            }
            card.append(
              chart("ops/s", [
                { name: "get", color: "#4e79a7", points: opsOf("get") },
                { name: "put", color: "#f28e2b", points: opsOf("put") },
                { name: "delete", color: "#e15759", points: opsOf("delete") }], { key: "ops", format: number(0) }),
              chart("hit ratio", [{ name: "hits", color: "#59a14f", points: pick("hit_ratio") }],
                { key: "hits", format: (value) => (value * 100).toFixed(1) + " %", minimumTop: 1 }),
              chart("latency (ms)", [
                { name: "p50", color: "#4e79a7", points: pick("p50_ms") },
                { name: "p99", color: "#e15759", points: pick("p99_ms") }], { key: "latency", format: number(2) }),
              chart("memory", [{ name: "allocated", color: "#76b7b2", points: pick("memory_bytes") }],
                { key: "memory", format: formatBytes, limit: latest.memory_limit_bytes }),
              chart("evictions and 503s /s", [
                { name: "evictions", color: "#b07aa1", points: pick("evictions") },
                { name: "503", color: "#e15759", points: pick("unavailable") }], { key: "refusals", format: number(1) }),
              chart("backlogs", [
                { name: "handoff", color: "#f28e2b", points: pick("handoff_backlog") },
                { name: "tombstones", color: "#9c755f", points: pick("tombstone_backlog") },
                { name: "repairs/s", color: "#59a14f", points: pick("repairs") }], { key: "backlog", format: number(0) }));
            card.append(element("p", { class: "quiet", text: `${latest.entries} entries · ${latest.status}` }));
            grid.append(card);
          }
        }

        function renderEvents() {
          const list = $("events");
          list.replaceChildren();
          for (const event of state.events.slice(-50).reverse()) {
            list.append(element("li", { "data-member": event.member },
              element("time", { text: new Date(event.time).toLocaleTimeString() }), " ",
              element("strong", { text: event.member }), " " + event.what));
          }
          if (!state.events.length) list.append(element("li", { class: "quiet", text: "No membership change seen yet." }));
        }

        document.addEventListener("click", async (event) => {
          const button = event.target.closest("button[data-action]");
          if (!button) return;
          const action = button.dataset.action;
          const member = button.dataset.member;
          const question = action === "leave"
            ? "Hand every key this node holds to its owners and leave the cluster for good?"
            : `Forget ${member}? Its keys stay with their other replicas.`;
          if (!confirm(question)) return;
          const url = action === "leave" ? "/cluster/leave" : "/cluster/members/" + encodeURIComponent(member);
          const response = await fetch(url, { method: action === "leave" ? "POST" : "DELETE", headers: headers() });
          const body = await response.json().catch(() => ({}));
          const message = $("action-message");
          message.textContent = response.ok ? `${action}: ${body.status || "done"}` : `${action} refused (${response.status}): ${body.error || ""}`;
          message.dataset.ok = response.ok ? "yes" : "no";
          if (response.status === 401 || response.status === 403) showTokenForm(body.error || "this needs an admin token");
        });

        connect();
        """#
}
