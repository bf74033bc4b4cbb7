//! The stats page at `/`: one server-rendered HTML page (CSS embedded in the binary, no
//! script, no external resource) that refreshes itself every 2 seconds. Everything it
//! shows comes from [`super::views`], the same data as the JSON endpoints.

use std::fmt::Write;

use super::views::{self, ListenerView, MemberView, PoolView, TopologyView};
use super::AdminState;

const CSS: &str = include_str!("page.css");

/// The whole page.
#[must_use]
pub fn render(state: &AdminState) -> String {
    let t = views::topology(state);
    let mut h = String::with_capacity(16 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"2\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>rolegate · {}</title><style>{CSS}</style></head><body>",
        esc(&t.scope)
    );
    header(&mut h, state, &t);
    h.push_str("<main>");
    members(&mut h, &t.members);
    listeners(&mut h, &views::listeners(state));
    pools(&mut h, &views::pools(state));
    h.push_str(
        "</main><footer>Refreshes every 2s. \
         <a href=\"/metrics\">/metrics</a> · <a href=\"/topology\">/topology</a> · \
         <a href=\"/listeners\">/listeners</a> · <a href=\"/pools\">/pools</a> · \
         <a href=\"/ready\">/ready</a> · <a href=\"/role/primary\">/role/primary</a></footer></body></html>\n",
    );
    h
}

fn header(h: &mut String, state: &AdminState, t: &TopologyView) {
    let leader = t.leader.as_deref().unwrap_or("none");
    let _ = write!(
        h,
        "<header><h1>rolegate<small>{}</small></h1>\
         <span class=\"fact\" id=\"leader\">leader <b>{}</b></span>\
         <span class=\"fact\">timeline <b>{}</b></span>\
         <span class=\"fact\">sync mode <b>{}</b></span>\
         <span class=\"fact\">generation <b>{}</b></span>",
        esc(&t.scope),
        esc(leader),
        t.timeline.map_or("?".into(), |n| n.to_string()),
        t.sync_mode,
        t.generation,
    );
    let (class, dcs) = if t.dcs.stale {
        ("bad", "DCS stale")
    } else if t.dcs.watch_up {
        ("ok", "DCS watch up")
    } else {
        ("bad", "DCS watch down")
    };
    let _ = write!(h, "<span class=\"badge {class}\" id=\"dcs\">{dcs}</span>");
    if t.leader_changing {
        h.push_str("<span class=\"badge warn\">leader changing: writes held</span>");
    }
    if t.paused {
        h.push_str("<span class=\"badge warn\">paused</span>");
    }
    let event = match (&t.dcs.last_event, t.dcs.last_event_age_seconds) {
        (Some(e), Some(age)) => format!("{} <b>{}</b> ago", esc(e), age_text(age)),
        _ => "none since start".into(),
    };
    let _ = write!(
        h,
        "<span class=\"fact\">last DCS event: {event}</span>\
         <span class=\"fact\">up <b>{}</b></span></header>",
        age_text(state.stats.started.elapsed().as_secs_f64())
    );
}

fn members(h: &mut String, members: &[MemberView]) {
    h.push_str(
        "<section id=\"members\"><h2>Members</h2><table><tr><th>member</th><th>routed as</th>\
         <th>Patroni role</th><th>state</th><th class=\"num\">lag</th><th>replication</th>\
         <th class=\"num\">timeline</th><th>address</th><th>tags</th></tr>",
    );
    if members.is_empty() {
        h.push_str("<tr><td colspan=\"9\" class=\"dim\">no member keys in the DCS</td></tr>");
    }
    for m in members {
        let state_class = if m.state == "running" {
            ""
        } else {
            " class=\"err\""
        };
        let repl = if m.is_primary || m.is_leader {
            "—"
        } else if m.sync {
            "sync"
        } else {
            "async"
        };
        let addr = m.host.as_deref().map_or_else(
            || "no conn_url".into(),
            |host| format!("{}:{}", esc(host), m.port),
        );
        let mut tags = String::new();
        for (k, v) in &m.tags {
            let _ = write!(tags, "<span class=\"tag\">{}={}</span>", esc(k), esc(v));
        }
        let _ = write!(
            h,
            "<tr data-member=\"{name}\"><td><b>{name}</b>{leader}</td>\
             <td><span class=\"badge r-{rr}\">{rr}</span></td><td>{role}</td><td{state_class}>{state}</td>\
             <td class=\"num\">{lag}</td><td>{repl}</td><td class=\"num\">{tl}</td><td>{addr}</td><td>{tags}</td></tr>",
            name = esc(&m.name),
            leader = if m.is_leader { " <span class=\"dim\">(leader key)</span>" } else { "" },
            rr = esc(&m.route_role),
            role = esc(&m.role),
            state = esc(&m.state),
            lag = m.lag_bytes.map_or("?".into(), bytes_text),
            tl = m.timeline.map_or("?".into(), |n| n.to_string()),
        );
    }
    h.push_str("</table></section>");
}

fn listeners(h: &mut String, ls: &[ListenerView]) {
    h.push_str(
        "<section id=\"listeners\"><h2>Listeners</h2><table><tr><th>listener</th><th>address</th>\
         <th>role</th><th>members now</th><th>pool mode</th>\
         <th class=\"num\">clients active</th><th class=\"num\">waiting</th><th class=\"num\">idle</th>\
         <th class=\"num\">servers active</th><th class=\"num\">idle</th><th class=\"num\">tps</th>\
         <th class=\"num\">transactions</th><th class=\"num\">query p50 / p99</th><th class=\"num\">errors</th></tr>",
    );
    for l in ls {
        let members = if l.members.is_empty() {
            "<span class=\"err\">none</span>".to_owned()
        } else {
            esc(&l.members.join(", "))
        };
        let latency = match (l.query_p50_seconds, l.query_p99_seconds) {
            (Some(a), Some(b)) => format!("{} / {}", ms_text(a), ms_text(b)),
            _ => "—".into(),
        };
        let err_class = if l.errors > 0 { " err" } else { "" };
        let _ = write!(
            h,
            "<tr data-listener=\"{name}\"><td><b>{name}</b></td><td>{addr}</td>\
             <td><span class=\"badge r-{role}\">{role}</span></td><td>{members}</td><td>{mode}</td>\
             <td class=\"num\">{ca}</td><td class=\"num\">{cw}</td><td class=\"num\">{ci}</td>\
             <td class=\"num\">{sa}</td><td class=\"num\">{si}</td><td class=\"num\">{tps:.1}</td>\
             <td class=\"num\">{tx}</td><td class=\"num\">{latency}</td><td class=\"num{err_class}\">{errors}</td></tr>",
            name = esc(&l.name),
            addr = esc(&l.addr),
            role = l.role,
            mode = l.pool_mode,
            ca = l.clients_active,
            cw = l.clients_waiting,
            ci = l.clients_idle,
            sa = l.servers_active,
            si = l.servers_idle,
            tps = l.tps,
            tx = l.transactions,
            errors = l.errors,
        );
    }
    h.push_str("</table></section>");
}

fn pools(h: &mut String, ps: &[PoolView]) {
    h.push_str(
        "<section id=\"pools\"><h2>Pools</h2><table><tr><th>listener</th><th>member</th>\
         <th>database</th><th>user</th><th class=\"num\">active</th><th class=\"num\">idle</th>\
         <th class=\"num\">waiting</th><th class=\"num\">size</th><th class=\"num\">opened</th>\
         <th class=\"num\">closed</th><th>state</th></tr>",
    );
    if ps.is_empty() {
        h.push_str(
            "<tr><td colspan=\"11\" class=\"dim\">no pool yet (pools open on first use)</td></tr>",
        );
    }
    for p in ps {
        let st = if p.draining {
            "<span class=\"badge warn\">draining</span>"
        } else {
            "<span class=\"badge ok\">open</span>"
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{st}</td></tr>",
            esc(&p.listener),
            esc(&p.member),
            esc(&p.database),
            esc(&p.user),
            p.active,
            p.idle,
            p.waiting,
            p.size,
            p.opened,
            p.closed,
        );
    }
    h.push_str("</table></section>");
}

/// HTML-escapes text that came from the DCS or a client.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn age_text(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{:.0}m{:02.0}s", (secs / 60.0).floor(), secs % 60.0)
    } else {
        format!(
            "{:.0}h{:02.0}m",
            (secs / 3600.0).floor(),
            (secs % 3600.0) / 60.0
        )
    }
}

fn ms_text(secs: f64) -> String {
    if secs.is_infinite() {
        ">30s".into()
    } else {
        format!("{}ms", secs * 1000.0)
    }
}

#[allow(clippy::cast_precision_loss)]
fn bytes_text(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} kB", n as f64 / 1024.0),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dcs_text_is_escaped_and_units_read_well() {
        assert_eq!(esc("<pg&\"1'>"), "&lt;pg&amp;&quot;1&#39;&gt;");
        assert_eq!(age_text(3.25), "3.2s");
        assert_eq!(age_text(125.0), "2m05s");
        assert_eq!(bytes_text(2048), "2.0 kB");
        assert_eq!(ms_text(0.0025), "2.5ms");
    }
}
