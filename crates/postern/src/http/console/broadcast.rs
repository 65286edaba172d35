//! The incident broadcast form: the same incident `postern broadcast --incident FILE.toml`
//! reads, built from the form's fields and checked by the same function
//! (`IncidentFile::check`), then planned and sent by `status::broadcast`. A preview is the
//! CLI's dry run and changes nothing; a send needs its confirmation tick and is recorded in
//! the audit log as the CLI records it. A broadcast goes to many tenants, so a tenant-admin
//! is refused; an auditor's post is refused by `Posted`.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{self, Notice, csrf_field, esc, input, may_change, page, select_pairs};
use super::{Fields, Posted, Session, record_with};
use crate::http::{ApiError, AppState};
use crate::status::IncidentState;
use crate::status::broadcast::{
    BROADCAST_CHANNELS, BroadcastReport, Draft, IncidentFile, Invalid, Origin, broadcast,
};

const TITLE: &str = "Incident broadcast";

const BODY_TEMPLATE: &str = "Hello {{tenant}},\n\n\n\nFollow {{status_url}} for updates.";

/// The form's fields as the incident file's keys; nothing is checked here.
fn draft(f: &Fields) -> Draft {
    let text = |k: &str| f.get(k).map(str::to_owned);
    Draft {
        title: text("title").unwrap_or_default(),
        body: text("body").unwrap_or_default(),
        state: text("state"),
        subject: text("subject"),
        status_body: text("status_body"),
        from: text("from"),
        tenants: match f.get("tenants") {
            Some("all") => None,
            t => Some(
                t.unwrap_or("")
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        },
        channels: Some(f.all("channels").into_iter().map(str::to_owned).collect()),
        suspect_provider: text("suspect_provider"),
        status_url: text("status_url"),
        incident: text("incident"),
    }
}

/// A refusal: the error to answer with, and the field it is about.
type Refusal = (ApiError, Option<&'static str>);

fn refused(i: Invalid) -> Refusal {
    let key = i.key;
    (
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            i.to_string(),
        ),
        Some(key),
    )
}

/// Checks the form, then previews (the dry run) or sends and records.
async fn run(st: &AppState, sess: &Session, f: &Fields) -> Result<BroadcastReport, Refusal> {
    let send = match f.get("action") {
        Some("send") => true,
        Some("preview") => false,
        _ => {
            return Err(refused(
                Origin::Form.invalid("action", "press Preview (dry run) or Send"),
            ));
        }
    };
    let file = IncidentFile::check(draft(f), Origin::Form).map_err(refused)?;
    if send && !f.checked("confirm") {
        return Err(refused(file.invalid(
            "confirm",
            "not confirmed: tick \"send these notices now\" to send; Preview changes nothing",
        )));
    }
    let now = st.clock.now_ms();
    let report = broadcast(&st.store, &st.admin.config, &file, !send, now)
        .await
        .map_err(|e| match e.downcast::<Invalid>() {
            Ok(i) => refused(i),
            Err(e) => (
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "broadcast_failed",
                    format!("the broadcast did not complete: {e:#}"),
                ),
                None,
            ),
        })?;
    if send {
        let target = report.incident_id.as_deref().unwrap_or("");
        let detail = report.audit_detail(&file);
        record_with(st, &sess.admin, "broadcast", target, None, detail)
            .await
            .map_err(|e| (e, None))?;
    }
    Ok(report)
}

pub(super) async fn page_get(State(st): State<Arc<AppState>>, sess: Session) -> Response {
    if let Err(e) = sess.admin.not_confined() {
        return html::error_page(&sess, e);
    }
    match form_body(&st, &sess, None, None).await {
        Ok(body) => page(&sess, StatusCode::OK, "broadcast", TITLE, None, &body),
        Err(e) => html::error_page(&sess, e),
    }
}

/// `broadcast` (with or without `--dry-run`), from the form.
pub(super) async fn submit(State(st): State<Arc<AppState>>, p: Posted) -> Response {
    let (sess, f) = (&p.sess, &p.form);
    if let Err(e) = sess.admin.not_confined() {
        return html::error_page(sess, e);
    }
    let (status, notice, report, keep, bad) = match run(&st, sess, f).await {
        Ok(r) => {
            let count = |o: &str| r.notices.iter().filter(|n| n.outcome == o).count();
            let notice = if r.dry_run {
                Notice::ok(format!(
                    "Dry run: {} notice(s) would be sent, {} cannot be sent, {} skipped (no contact). Nothing was sent or stored.",
                    count("would_send"),
                    count("failed"),
                    count("skipped")
                ))
            } else {
                let text = format!(
                    "Broadcast {}: {} sent, {} failed, {} skipped; posted on the status page as incident {}.",
                    r.broadcast_id.as_deref().unwrap_or("-"),
                    count("sent"),
                    count("failed"),
                    count("skipped"),
                    r.incident_id.as_deref().unwrap_or("-")
                );
                if r.failed() > 0 {
                    Notice::err(text)
                } else {
                    Notice::ok(text)
                }
            };
            // After a send the form starts afresh, so a second press does not repeat it.
            let keep = r.dry_run;
            (StatusCode::OK, notice, Some(r), keep, None)
        }
        Err((e, key)) => (e.status, Notice::err(e.message), None, true, key),
    };
    let form = keep.then_some(f);
    match form_body(&st, sess, form, bad).await {
        Ok(body) => {
            let body = match &report {
                Some(r) => format!("{}{body}", report_html(r)),
                None => body,
            };
            page(sess, status, "broadcast", TITLE, Some(notice), &body)
        }
        Err(e) => html::error_page(sess, e),
    }
}

/// The per-tenant, per-channel result, and (once per tenant) the rendered notice.
fn report_html(r: &BroadcastReport) -> String {
    let mut out = format!(
        "<section><h2>{}</h2><div class=\"scroll\"><table id=\"report\"><tr><th>Tenant</th><th>Channel</th><th>To</th><th>Provider</th><th>Result</th><th>Detail</th></tr>",
        if r.dry_run {
            "Who would get what (dry run)"
        } else {
            "Delivery"
        }
    );
    for n in &r.notices {
        let id = esc(&format!("{}-{}", n.tenant, n.channel));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td id=\"p-{id}\">{}</td><td id=\"r-{id}\">{}</td><td id=\"d-{id}\">{}</td></tr>",
            esc(&n.tenant),
            esc(&n.channel),
            esc(&n.address),
            esc(n.provider.as_deref().unwrap_or("")),
            esc(&n.outcome),
            esc(&n.detail)
        );
    }
    out.push_str("</table></div>");
    let mut seen: Vec<&str> = Vec::new();
    for n in &r.notices {
        if seen.contains(&n.tenant.as_str()) {
            continue;
        }
        seen.push(&n.tenant);
        let id = esc(&n.tenant);
        let _ = write!(
            out,
            "<h3>To {}</h3><p id=\"subject-{id}\">{}</p><pre id=\"text-{id}\">{}</pre>",
            esc(&n.tenant),
            esc(&n.subject),
            esc(&n.text)
        );
    }
    out.push_str("</section>");
    out
}

/// ` aria-invalid="true"` on the field a refusal is about.
fn marked(bad: Option<&str>, name: &str) -> &'static str {
    if bad == Some(name) {
        " aria-invalid=\"true\""
    } else {
        ""
    }
}

fn textarea(name: &str, label: &str, value: &str, rows: u8, bad: Option<&str>) -> String {
    format!(
        "<label for=\"f-{name}\">{}</label><textarea id=\"f-{name}\" name=\"{name}\" rows=\"{rows}\"{}>{}</textarea>",
        esc(label),
        marked(bad, name),
        esc(value)
    )
}

/// A select of `(value, label)` options, marked when a refusal is about it.
fn choice(
    name: &str,
    label: &str,
    options: &[(String, String)],
    selected: Option<&str>,
    bad: Option<&str>,
) -> String {
    let pairs: Vec<(&str, &str)> = options
        .iter()
        .map(|(v, t)| (v.as_str(), t.as_str()))
        .collect();
    select_pairs(name, label, &pairs, selected, marked(bad, name))
}

async fn form_body(
    st: &AppState,
    sess: &Session,
    form: Option<&Fields>,
    bad: Option<&str>,
) -> Result<String, ApiError> {
    if !may_change(sess) {
        return Ok("<section><p>Incident broadcasts are sent by owners and operators; this account is read-only. Past incidents are on the <a href=\"/status\">status page</a> and broadcasts in the audit log.</p></section>".into());
    }
    let open = crate::status::list_incidents(&st.store, 50)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                e.to_string(),
            )
        })?;
    let field = |k: &str| form.and_then(|f| f.get(k));
    let text = |name: &str, label: &str| input(name, label, field(name), marked(bad, name));
    let states: Vec<(String, String)> = IncidentState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), s.as_str().to_owned()))
        .collect();
    let mut providers = vec![(String::new(), "(none)".to_owned())];
    providers.extend(
        st.admin
            .config
            .providers
            .iter()
            .map(|(n, p)| (n.clone(), format!("{n} ({})", p.kind()))),
    );
    let mut incidents = vec![(String::new(), "open a new incident".to_owned())];
    incidents.extend(open.iter().filter(|i| i.resolved_at.is_none()).map(|i| {
        (
            i.id.clone(),
            format!("update {} — {} ({})", i.id, i.title, i.state),
        )
    }));
    let mut channels = String::new();
    for ch in BROADCAST_CHANNELS {
        let on = form.is_none_or(|f| f.all("channels").contains(&ch));
        let _ = write!(
            channels,
            "<label><input type=\"checkbox\" name=\"channels\" value=\"{ch}\" id=\"f-channel-{ch}\"{}{}> {ch}</label>",
            if on { " checked" } else { "" },
            marked(bad, "channels")
        );
    }
    Ok(format!(
        "<section><h2>Notice</h2><p>One notice per affected tenant on every chosen channel it has a contact for; email never goes through the suspect provider. Placeholders: <code>{{{{tenant}}}}</code>, <code>{{{{status_url}}}}</code>, <code>{{{{title}}}}</code>. Preview first: it shows who would get what and changes nothing.</p>\
         <form method=\"post\" action=\"/console/broadcast\" id=\"broadcast\">{csrf}{title}{state}{subject}{body}{status_body}{from}{tenants}\
         <fieldset><legend>Channels</legend>{channels}</fieldset>{suspect}{status_url}{incident}\
         <button type=\"submit\" name=\"action\" value=\"preview\" id=\"preview\" class=\"plain\">Preview (dry run)</button>\
         <label><input type=\"checkbox\" name=\"confirm\" value=\"yes\" id=\"f-confirm\"{confirm_bad}> send these notices now</label>\
         <button type=\"submit\" name=\"action\" value=\"send\" id=\"send\" class=\"danger\">Send</button></form></section>",
        csrf = csrf_field(sess),
        title = text("title", "Title"),
        state = choice("state", "State", &states, field("state"), bad),
        subject = text("subject", "Subject (empty: the title)"),
        body = textarea(
            "body",
            "Body",
            form.map_or(BODY_TEMPLATE, |f| f.get("body").unwrap_or("")),
            8,
            bad
        ),
        status_body = textarea(
            "status_body",
            "Status page text (empty: the body, with {{tenant}} = \"customers\")",
            field("status_body").unwrap_or(""),
            3,
            bad
        ),
        from = text("from", "From (needed for email and webhook)"),
        tenants = input(
            "tenants",
            "Tenants (\"all\" or names separated by commas)",
            Some(form.map_or("all", |f| f.get("tenants").unwrap_or(""))),
            marked(bad, "tenants")
        ),
        suspect = choice(
            "suspect_provider",
            "Suspect provider (never used for the notices)",
            &providers,
            field("suspect_provider"),
            bad
        ),
        status_url = text(
            "status_url",
            "Status page address (empty: this server's /status)"
        ),
        incident = choice("incident", "Incident", &incidents, field("incident"), bad),
        confirm_bad = marked(bad, "confirm"),
    ))
}
