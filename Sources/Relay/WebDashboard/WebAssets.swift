// swift-format-ignore-file
/// The dashboard's three files, served from the binary (no external assets; SPEC §12.6). The page
/// loads its script and style from its own origin, so the Content-Security-Policy needs no inline
/// code at all.
enum WebAssets {
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static func page(actions: Bool) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Mothership</title>
        <link rel="stylesheet" href="/dashboard.css">
        <script src="/dashboard.js" defer></script>
        </head>
        <body data-actions="\(actions)">
        <header>
        <h1>Mothership <span id="fleet-name"></span></h1>
        <span id="fleet-state" class="badge"></span>
        <span id="link" class="muted">connecting…</span>
        <span id="controls" hidden>
        <input id="token" type="password" placeholder="paste the token from the log" autocomplete="off">
        <button id="reload" type="button">Reload manifest</button>
        </span>
        </header>
        <main>
        <section>
        <h2>Fleet</h2>
        <table>
        <thead><tr><th>Name</th><th>Kind</th><th>State</th><th>PID</th><th>Health</th><th>Restarts</th><th>Memory</th><th>Uptime</th><th id="actions-head" hidden>Actions</th></tr></thead>
        <tbody id="vessels"></tbody>
        </table>
        <p id="message" role="status"></p>
        </section>
        <section>
        <h2>Requests per second, by route</h2>
        <div id="rates"><p class="muted">no requests counted yet</p></div>
        </section>
        <section>
        <h2>Output of <span id="log-name">(select a vessel)</span></h2>
        <pre id="log"></pre>
        </section>
        </main>
        </body>
        </html>

        """
    }

    static let style = """
        :root { color-scheme: light dark; --line: #8884; --ok: #2a2; --bad: #d33; --warn: #c80; }
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0; }
        header { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; padding: .6em 1em; border-bottom: 1px solid var(--line); }
        h1 { font-size: 1.2em; margin: 0; }
        h2 { font-size: 1em; margin: 1.2em 0 .4em; }
        main { padding: 0 1em 1em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid var(--line); white-space: nowrap; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        tbody tr { cursor: pointer; }
        tbody tr.selected { background: #8882; }
        tbody tr.instance td { opacity: 0.75; }
        tbody tr.instance td:first-child { padding-left: 1.5em; }
        .badge { padding: .1em .5em; border-radius: .6em; border: 1px solid var(--line); }
        .running, .ok { color: var(--ok); }
        .crashed, .failing, .failed { color: var(--bad); }
        .starting, .restarting, .stopping, .backoff { color: var(--warn); }
        .muted { opacity: .65; }
        button { margin-right: .3em; }
        pre { background: #8881; padding: .6em; max-height: 24em; overflow: auto; margin: 0; font-size: 12px; }
        pre .stderr { color: var(--bad); }
        #rates { display: flex; flex-wrap: wrap; gap: 1.2em; }
        .rate svg { display: block; width: 160px; height: 32px; background: #8881; }
        .rate polyline { fill: none; stroke: currentColor; stroke-width: 1.5; }

        """

    static let script = """
        "use strict";
        const $ = (id) => document.getElementById(id);
        const actions = document.body.dataset.actions === "true";
        let fleet = null, receivedAt = 0, selected = null, logTimer = null;
        const rates = new Map();
        let lastCounts = null, lastCountsAt = 0;

        function cell(row, text, cls) {
          const td = row.insertCell();
          td.textContent = text;
          if (cls) td.className = cls;
          return td;
        }
        function bytes(n) {
          if (n == null) return "–";
          const units = ["B", "KiB", "MiB", "GiB"];
          let i = 0;
          while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
          return n.toFixed(i ? 1 : 0) + " " + units[i];
        }
        function duration(s) {
          if (s == null) return "–";
          s = Math.floor(s);
          if (s < 60) return s + "s";
          if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
          if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
          return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
        }
        function health(h) { return h == null ? "–" : h ? "ok" : "failing"; }

        function render() {
          if (!fleet) return;
          document.title = fleet.name + " · Mothership";
          $("fleet-name").textContent = fleet.name;
          $("fleet-state").textContent = fleet.state;
          $("fleet-state").className = "badge " + fleet.state;
          const elapsed = (Date.now() - receivedAt) / 1000;
          const body = $("vessels");
          body.replaceChildren();
          for (const v of fleet.vessels) {
            const row = body.insertRow();
            row.dataset.vessel = v.name;
            if (v.name === selected) row.className = "selected";
            cell(row, v.name);
            cell(row, v.kind);
            cell(row, v.state, v.state);
            cell(row, v.pid == null ? "–" : String(v.pid), "num");
            cell(row, health(v.healthy), health(v.healthy));
            cell(row, String(v.restarts), "num");
            cell(row, bytes(v.memory_rss_bytes), "num");
            cell(row, duration(v.uptime_seconds == null ? null : v.uptime_seconds + elapsed), "num");
            if (actions) {
              const td = row.insertCell();
              for (const verb of ["restart", "stop", "start"]) {
                const b = document.createElement("button");
                b.type = "button";
                b.textContent = verb;
                b.dataset.verb = verb;
                b.dataset.vessel = v.name;
                td.appendChild(b);
              }
            }
            // A ship with workers: a row per instance under its own (a click selects the ship).
            for (const w of v.workers || []) {
              const sub = body.insertRow();
              sub.className = "instance";
              sub.dataset.vessel = v.name;
              cell(sub, w.name);
              cell(sub, w.kind);
              cell(sub, w.state, w.state);
              cell(sub, String(w.pid), "num");
              cell(sub, health(w.healthy), health(w.healthy));
              cell(sub, String(w.restarts), "num");
              cell(sub, bytes(w.memory_rss_bytes), "num");
              cell(sub, duration(w.uptime_seconds == null ? null : w.uptime_seconds + elapsed), "num");
              if (actions) sub.insertCell();
            }
          }
        }

        async function command(path) {
          const token = $("token").value.trim();
          if (token) sessionStorage.setItem("mothership-token", token);
          $("message").textContent = "…";
          try {
            const r = await fetch(path, { method: "POST", headers: { "X-Mothership-Token": token } });
            const text = await r.text();
            let said = text;
            try { const j = JSON.parse(text); said = j.error || j.summary || (j.action + " " + j.vessel); } catch (e) {}
            $("message").textContent = (r.ok ? "" : r.status + ": ") + said;
          } catch (e) {
            $("message").textContent = "request failed: " + e;
          }
        }

        async function loadLog() {
          if (!selected) return;
          try {
            const r = await fetch("/api/vessels/" + encodeURIComponent(selected) + "/logs");
            if (!r.ok) return;
            const lines = (await r.json()).lines;
            const pre = $("log");
            const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
            pre.replaceChildren();
            for (const l of lines) {
              const span = document.createElement("span");
              span.textContent = l.line + "\\n";
              if (l.stream === "stderr") span.className = "stderr";
              pre.appendChild(span);
            }
            if (atBottom) pre.scrollTop = pre.scrollHeight;
          } catch (e) {}
        }

        function select(name) {
          selected = name;
          $("log-name").textContent = name;
          render();
          loadLog();
          clearInterval(logTimer);
          logTimer = setInterval(loadLog, 2000);
        }

        $("vessels").addEventListener("click", (event) => {
          const button = event.target.closest("button");
          if (button) {
            command("/api/vessels/" + encodeURIComponent(button.dataset.vessel) + "/" + button.dataset.verb);
            return;
          }
          const row = event.target.closest("tr");
          if (row) select(row.dataset.vessel);
        });

        if (actions) {
          $("controls").hidden = false;
          $("actions-head").hidden = false;
          $("token").value = sessionStorage.getItem("mothership-token") || "";
          $("reload").addEventListener("click", () => command("/api/reload"));
        }

        // Request rates from the relay's counters on /metrics: one sample every 2 s, 3 minutes kept.
        function label(line, name) {
          const m = line.match(new RegExp(name + '="((?:[^"\\\\\\\\]|\\\\\\\\.)*)"'));
          return m ? m[1] : "";
        }
        async function sampleRates() {
          try {
            const r = await fetch("/metrics");
            if (!r.ok) return;
            const counts = new Map();
            for (const line of (await r.text()).split("\\n")) {
              if (!line.startsWith("mothership_requests_total{")) continue;
              const route = label(line, "route");
              const value = Number(line.slice(line.lastIndexOf(" ") + 1));
              counts.set(route, (counts.get(route) || 0) + value);
            }
            const now = Date.now();
            if (lastCounts) {
              const seconds = (now - lastCountsAt) / 1000;
              for (const [route, count] of counts) {
                const series = rates.get(route) || [];
                series.push(Math.max(0, count - (lastCounts.get(route) || 0)) / seconds);
                if (series.length > 90) series.shift();
                rates.set(route, series);
              }
              drawRates();
            }
            lastCounts = counts;
            lastCountsAt = now;
          } catch (e) {}
        }
        function drawRates() {
          if (rates.size === 0) return;
          const box = $("rates");
          box.replaceChildren();
          const ns = "http://www.w3.org/2000/svg";
          for (const [route, series] of rates) {
            const div = document.createElement("div");
            div.className = "rate";
            const max = Math.max(1, ...series);
            const svg = document.createElementNS(ns, "svg");
            svg.setAttribute("viewBox", "0 0 160 32");
            const line = document.createElementNS(ns, "polyline");
            line.setAttribute("points", series.map((v, i) => ((90 - series.length + i) * 160 / 89).toFixed(1) + "," + (31 - v / max * 30).toFixed(1)).join(" "));
            svg.appendChild(line);
            const caption = document.createElement("div");
            caption.textContent = route + " — " + series[series.length - 1].toFixed(1) + "/s";
            div.append(caption, svg);
            box.appendChild(div);
          }
        }
        sampleRates();
        setInterval(sampleRates, 2000);
        setInterval(render, 1000);

        // The fleet, live: EventSource reconnects by itself after a drop.
        const events = new EventSource("/events");
        events.onopen = () => { $("link").textContent = "live"; };
        events.onerror = () => { $("link").textContent = "reconnecting…"; };
        events.onmessage = (event) => {
          fleet = JSON.parse(event.data);
          receivedAt = Date.now();
          if (!selected && fleet.vessels.length) select(fleet.vessels[0].name);
          render();
        };

        """
}
