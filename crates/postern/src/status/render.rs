//! The status page as HTML (server-rendered, no script, readable on a phone) and as an Atom
//! 1.0 feed. Every piece of stored text goes through [`escape`] before it reaches either.

use std::fmt::Write;

use super::{ChannelState, IncidentView, StatusPage};

/// Escapes text for HTML and XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn label(s: ChannelState) -> &'static str {
    match s {
        ChannelState::Operational => "Operational",
        ChannelState::Degraded => "Degraded performance",
        ChannelState::Outage => "Outage",
        ChannelState::Paused => "Paused",
    }
}

fn channel_name(c: &str) -> &str {
    match c {
        "email" => "Email",
        "sms" => "SMS",
        "social" => "Social posts",
        "webhook" => "Webhooks",
        other => other,
    }
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,sans-serif;max-width:42rem;margin:0 auto;padding:1rem;line-height:1.45;color:#1b1b1b}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:.2rem 0}\
.banner{padding:.8rem 1rem;border-radius:.4rem;font-weight:600}\
.operational{background:#e3f6e8;color:#135c28}.degraded{background:#fff4d6;color:#6b4b00}\
.outage{background:#fde2e1;color:#8a1c17}.paused{background:#e6e9f5;color:#26306b}\
ul.channels{list-style:none;padding:0}ul.channels li{display:flex;justify-content:space-between;padding:.6rem 0;border-bottom:1px solid #ddd}\
.pill{padding:0 .5rem;border-radius:.3rem}article{border-left:3px solid #ccc;padding-left:.8rem;margin:1rem 0}\
.update{margin:.6rem 0}.meta{color:#555;font-size:.85rem}p{white-space:pre-wrap;margin:.2rem 0}";

fn incident_html(out: &mut String, i: &IncidentView) {
    let _ = write!(
        out,
        "<article id=\"incident-{id}\"><h3>{title}</h3><div class=\"meta\">{state} · opened {created}</div>",
        id = escape(&i.id),
        title = escape(&i.title),
        state = escape(&i.state),
        created = escape(&i.created_at),
    );
    for u in &i.updates {
        let _ = write!(
            out,
            "<div class=\"update\"><div class=\"meta\"><strong>{state}</strong> · <time datetime=\"{at}\">{at}</time></div><p>{body}</p></div>",
            state = escape(&u.state),
            at = escape(&u.at),
            body = escape(&u.body),
        );
    }
    out.push_str("</article>");
}

/// The page as HTML.
pub fn html(page: &StatusPage) -> String {
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Service status</title><link rel=\"alternate\" type=\"application/atom+xml\" title=\"Incidents\" href=\"/status/feed.atom\">\
<style>{STYLE}</style></head><body><h1>Service status</h1>"
    );
    let overall = match page.overall {
        ChannelState::Operational => "All systems operational",
        ChannelState::Degraded => "Some systems are degraded",
        ChannelState::Outage => "Some systems are down",
        ChannelState::Paused => "Some sending is paused",
    };
    let _ = write!(
        out,
        "<div class=\"banner {cls}\">{overall}</div><ul class=\"channels\">",
        cls = page.overall.as_str()
    );
    for c in &page.channels {
        let _ = write!(
            out,
            "<li><span>{name}</span><span class=\"pill {cls}\">{label}</span></li>",
            name = escape(channel_name(&c.channel)),
            cls = c.state.as_str(),
            label = label(c.state),
        );
    }
    out.push_str("</ul><h2>Current incidents</h2>");
    if page.incidents.is_empty() {
        out.push_str("<p>No open incidents.</p>");
    }
    for i in &page.incidents {
        incident_html(&mut out, i);
    }
    out.push_str("<h2>History</h2>");
    if page.history.is_empty() {
        out.push_str("<p>No past incidents.</p>");
    }
    for i in &page.history {
        incident_html(&mut out, i);
    }
    let _ = write!(
        out,
        "<p class=\"meta\">Updated {at} · <a href=\"/status.json\">JSON</a> · <a href=\"/status/feed.atom\">Atom feed</a></p></body></html>",
        at = escape(&page.generated_at)
    );
    out
}

/// The incidents (open and past) as an Atom 1.0 feed. `base` is the page's absolute URL
/// (`http://host/status`); it makes the feed and entry ids.
pub fn atom(page: &StatusPage, base: &str) -> String {
    let mut all: Vec<&IncidentView> = page.incidents.iter().chain(&page.history).collect();
    all.sort_by_key(|i| std::cmp::Reverse(i.updated_ms));
    let updated = all
        .first()
        .map_or(page.generated_at.as_str(), |i| i.updated_at.as_str());
    let base = escape(base);
    let mut out = String::with_capacity(4096);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\
<id>{base}</id><title>Service status</title><updated>{updated}</updated>\
<link rel=\"self\" href=\"{base}/feed.atom\"/><link rel=\"alternate\" href=\"{base}\"/>\
<author><name>Service status</name></author>",
        updated = escape(updated),
    );
    for i in all {
        let mut content = String::new();
        for u in &i.updates {
            let _ = writeln!(content, "[{}] {}: {}", u.at, u.state, u.body);
        }
        let _ = write!(
            out,
            "<entry><id>urn:uuid:{id}</id><title>{title} ({state})</title><updated>{updated}</updated>\
<published>{published}</published><link rel=\"alternate\" href=\"{base}#incident-{id}\"/>\
<content type=\"text\">{content}</content></entry>",
            id = escape(&i.id),
            title = escape(&i.title),
            state = escape(&i.state),
            updated = escape(&i.updated_at),
            published = escape(&i.created_at),
            content = escape(&content),
        );
    }
    out.push_str("</feed>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_controls() {
        assert_eq!(
            escape("<a href=\"x\">&'\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;\u{FFFD}"
        );
    }
}
