//! HTML building blocks: escaping, the page frame, notices, forms and sparklines. Every
//! value that did not come from this file goes through [`esc`].

use std::fmt::Write;

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::{Session, harden};
use crate::admin::Role;
use crate::http::ApiError;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A message at the top of a page: what an action did, or why it was refused.
pub struct Notice {
    ok: bool,
    html: String,
}

impl Notice {
    pub fn ok(text: impl AsRef<str>) -> Self {
        Self {
            ok: true,
            html: esc(text.as_ref()),
        }
    }
    pub fn err(text: impl AsRef<str>) -> Self {
        Self {
            ok: false,
            html: esc(text.as_ref()),
        }
    }
    /// A success notice with markup built by the caller (values escaped there).
    pub fn ok_html(html: String) -> Self {
        Self { ok: true, html }
    }

    fn render(&self) -> String {
        let (class, role) = if self.ok {
            ("ok", "status")
        } else {
            ("err", "alert")
        };
        format!(
            "<div class=\"notice {class}\" role=\"{role}\" id=\"notice\">{}</div>",
            self.html
        )
    }
}

/// The outcome of a form: the status to answer with and the notice to show.
pub fn outcome<T>(r: Result<T, ApiError>, ok: impl FnOnce(T) -> Notice) -> (StatusCode, Notice) {
    match r {
        Ok(v) => (StatusCode::OK, ok(v)),
        Err(e) => (e.status, Notice::err(e.message)),
    }
}

const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;background:#f4f5f7}
header{background:#1b1f24;color:#fff;padding:.5rem .75rem;display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
header strong{margin-right:auto}
nav{display:flex;flex-wrap:wrap;gap:.25rem;padding:.5rem .75rem;background:#fff;border-bottom:1px solid #d0d4da}
nav a{display:inline-block;padding:.6rem .8rem;min-height:44px;border-radius:6px;color:#1b1f24;text-decoration:none}
nav a.on{background:#1b1f24;color:#fff}
nav a.kill{background:#b3261e;color:#fff;font-weight:700}
main{max-width:64rem;margin:0 auto;padding:.75rem}
h1{font-size:1.4rem;margin:.5rem 0} h2{font-size:1.15rem;margin:1.25rem 0 .5rem}
section{background:#fff;border:1px solid #d0d4da;border-radius:8px;padding:.75rem;margin:.75rem 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.95rem}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid #e3e6ea;vertical-align:top}
label{display:block;margin:.5rem 0 .2rem;font-weight:600}
input[type=text],input[type=password],input[type=number],select,textarea{width:100%;font-size:1rem;padding:.6rem;min-height:44px;border:1px solid #9aa1ab;border-radius:6px}
input[type=checkbox]{width:1.4rem;height:1.4rem;vertical-align:middle}
button{font-size:1rem;min-height:44px;padding:.6rem 1rem;border-radius:6px;border:1px solid #1b1f24;background:#1b1f24;color:#fff;cursor:pointer;margin:.5rem .25rem .25rem 0}
button.danger{background:#b3261e;border-color:#b3261e}
button.big{width:100%;font-size:1.4rem;min-height:96px;font-weight:700}
button.plain{background:#fff;color:#1b1f24}
.notice{padding:.75rem;border-radius:6px;margin:.75rem 0;white-space:pre-wrap;word-break:break-word}
.notice.ok{background:#e6f4ea;border:1px solid #1e7e34}
.notice.err{background:#fdecea;border:1px solid #b3261e}
.state{display:inline-block;padding:.1rem .5rem;border-radius:999px;background:#e3e6ea}
.state.healthy{background:#e6f4ea}.state.degraded{background:#fff4d6}.state.down,.state.suspended{background:#fdecea}
.banner{font-size:1.3rem;font-weight:700;padding:1rem;border-radius:8px;text-align:center}
.banner.paused{background:#b3261e;color:#fff}.banner.running{background:#e6f4ea}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9rem;word-break:break-all;white-space:pre-wrap}
.secret{font-size:1.05rem;background:#fff;padding:.4rem;border:1px dashed #1b1f24;display:block}
svg.spark{width:100%;height:48px;display:block}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:.75rem}
.grid.small{grid-template-columns:repeat(auto-fit,minmax(6rem,1fr))}
figure{margin:0}
.muted{color:#5b6470}
"#;

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · Postern console</title><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

const NAV: &[(&str, &str)] = &[
    ("overview", "Overview"),
    ("providers", "Providers"),
    ("guard", "Guard"),
    ("held", "Held"),
    ("keys", "Keys"),
    ("broadcast", "Broadcast"),
    ("audit", "Audit log"),
    ("kill", "Kill switch"),
];

/// A full page for a logged-in admin.
pub fn page(
    sess: &Session,
    status: StatusCode,
    active: &str,
    title: &str,
    notice: Option<Notice>,
    body: &str,
) -> Response {
    let who = &sess.admin.who;
    let mut out = head(title);
    let tenant = who
        .tenant
        .as_ref()
        .map_or(String::new(), |(_, n)| format!(" of {}", esc(n)));
    let _ = write!(
        out,
        "<header><strong>Postern</strong><span id=\"who\">{} · {}{tenant}</span>\
         <form method=\"post\" action=\"/console/logout\">{}<button class=\"plain\" type=\"submit\">Log out</button></form></header><nav>",
        esc(&who.actor),
        who.role.as_str(),
        csrf_field(sess)
    );
    for (slug, label) in NAV {
        let class = match (*slug == active, *slug == "kill") {
            (true, _) => " class=\"on\"",
            (false, true) => " class=\"kill\"",
            _ => "",
        };
        let _ = write!(out, "<a href=\"/console/{slug}\"{class}>{label}</a>");
    }
    let _ = write!(out, "</nav><main><h1>{}</h1>", esc(title));
    if let Some(n) = notice {
        out.push_str(&n.render());
    }
    out.push_str(body);
    out.push_str("</main></body></html>");
    harden((status, Html(out)).into_response())
}

/// A page before login (no navigation).
pub fn bare_page(status: StatusCode, title: &str, notice: Option<Notice>, body: &str) -> Response {
    let mut out = head(title);
    let _ = write!(
        out,
        "<header><strong>Postern</strong></header><main><h1>{}</h1>",
        esc(title)
    );
    if let Some(n) = notice {
        out.push_str(&n.render());
    }
    out.push_str(body);
    out.push_str("</main></body></html>");
    harden((status, Html(out)).into_response())
}

/// A refusal as a page: the admin API's error, its status and message.
pub fn error_page(sess: &Session, e: ApiError) -> Response {
    let title = if e.status == StatusCode::FORBIDDEN {
        "Not allowed"
    } else {
        "Cannot do that"
    };
    page(
        sess,
        e.status,
        "",
        title,
        Some(Notice::err(&e.message)),
        "<p><a href=\"/console/overview\">Back to the overview</a></p>",
    )
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(sess: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&sess.csrf)
    )
}

/// Whether this admin gets forms that change things (an auditor gets none).
pub fn may_change(sess: &Session) -> bool {
    sess.admin.who.role != Role::Auditor
}

/// A labelled text input (id `f-NAME`).
pub fn input(name: &str, label: &str, value: Option<&str>, extra: &str) -> String {
    input_in("f", name, label, value, extra)
}

/// A labelled text input of form `form` (id `FORM-NAME`), for pages with several forms.
pub fn input_in(form: &str, name: &str, label: &str, value: Option<&str>, extra: &str) -> String {
    format!(
        "<label for=\"{form}-{name}\">{}</label><input type=\"text\" id=\"{form}-{name}\" name=\"{name}\" value=\"{}\"{extra}>",
        esc(label),
        esc(value.unwrap_or(""))
    )
}

/// A select over `options` (value = label), with `selected` chosen.
pub fn select(name: &str, label: &str, options: &[String], selected: Option<&str>) -> String {
    let pairs: Vec<(&str, &str)> = options.iter().map(|o| (o.as_str(), o.as_str())).collect();
    select_pairs(name, label, &pairs, selected, "")
}

/// A select whose options are `(value, label)`, with `selected` chosen; `extra` goes into
/// the select tag (e.g. ` aria-invalid="true"`).
pub fn select_pairs(
    name: &str,
    label: &str,
    options: &[(&str, &str)],
    selected: Option<&str>,
    extra: &str,
) -> String {
    let mut out = format!(
        "<label for=\"f-{name}\">{}</label><select id=\"f-{name}\" name=\"{name}\"{extra}>",
        esc(label)
    );
    for (value, text) in options {
        let sel = if selected.unwrap_or("") == *value {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(value),
            esc(text)
        );
    }
    out.push_str("</select>");
    out
}

/// A sparkline of `values` as inline SVG, labelled for screen readers.
pub fn sparkline(label: &str, values: &[i64]) -> String {
    let w = 200.0_f64;
    let h = 40.0_f64;
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = values.len().max(2) as f64 - 1.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * w / n,
                h - (*v as f64 / max) * (h - 2.0) - 1.0
            )
        })
        .collect();
    let total: i64 = values.iter().sum();
    format!(
        "<figure><figcaption>{} <strong>{total}</strong> <span class=\"muted\">(peak {})</span></figcaption>\
         <svg class=\"spark\" viewBox=\"0 0 {w} {h}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{}: {total}\">\
         <polyline fill=\"none\" stroke=\"#1b1f24\" stroke-width=\"1.5\" vector-effect=\"non-scaling-stroke\" points=\"{}\"/></svg></figure>",
        esc(label),
        max as i64,
        esc(label),
        points.join(" ")
    )
}

/// `part` of `whole` in percent, or a dash.
pub fn pct(part: i64, whole: i64) -> String {
    if whole <= 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>"a" & 'b'</script>"#),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
        assert_eq!(esc("plain"), "plain");
    }

    #[test]
    fn sparkline_has_one_point_per_value_and_an_escaped_label() {
        let svg = sparkline("<b>", &[0, 5, 10]);
        let points = svg
            .split("points=\"")
            .nth(1)
            .and_then(|p| p.split('"').next());
        assert_eq!(points.map(|p| p.split(' ').count()), Some(3), "{svg}");
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"), "{svg}");
        assert!(svg.contains("<strong>15</strong>"), "{svg}");
        // No values, or all zero: still a valid figure (no division by zero).
        assert!(sparkline("x", &[]).contains("<strong>0</strong>"));
        assert!(!sparkline("x", &[0, 0]).contains("NaN"));
    }

    #[test]
    fn pct_handles_an_empty_whole() {
        assert_eq!(pct(1, 0), "–");
        assert_eq!(pct(1, 4), "25.0%");
    }
}
