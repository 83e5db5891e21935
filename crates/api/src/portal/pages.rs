//! The portal's pages and actions. Each one does its work through [`ops`]
//! with the session's tenant as the caller, and renders a typed context.
use super::charts::{charts, Chart};
use super::ops::{
    self, DeadLetter, Delivery, EventType, ScopedDelivery, SecretOut, Stats, Webhook,
};
use super::{
    message, page, page_status, render, CsrfForm, Form, PortalError, PortalResult, Session,
};
use crate::auth::{hash_key, Caller};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use time::OffsetDateTime;

type Params = Query<HashMap<String, String>>;
/// Errors of a form's fields: the field's name, then its message.
type FieldErrors = BTreeMap<String, String>;

/// `<input type=datetime-local>` (UTC) → RFC 3339; other text is passed on
/// as typed, for the API to accept or name.
fn local_to_rfc3339(v: &str) -> String {
    match v.len() {
        16 => format!("{v}:00Z"),
        19 => format!("{v}Z"),
        _ => v.to_owned(),
    }
}

/// A query parameter, trimmed; `None` when absent or empty.
fn param(q: &HashMap<String, String>, k: &str) -> Option<String> {
    q.get(k)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

fn webhook_path(id: &str) -> String {
    format!("/portal/webhooks/{id}")
}

/// The banner on top of a page.
#[derive(Serialize)]
struct Flash {
    /// `ok` or `error`.
    kind: &'static str,
    text: String,
}

/// The flash banner of a page reached after an action (`?done=…`): one of a
/// fixed set of messages. Its details (`n`: a delivery id, a count, the grace
/// period) are shown only when `sig` proves the server put them there for this
/// session ([`redirect_done`]); any other text in the address is ignored.
fn flash(st: &AppState, s: &Session, p: &HashMap<String, String>) -> Option<Flash> {
    let done = p.get("done").map(String::as_str).unwrap_or("");
    let n = p
        .get("n")
        .map(String::as_str)
        .filter(|n| details_genuine(st, s, done, n, p.get("sig")));
    let text = match (done, n) {
        ("created", _) => {
            "Webhook created. Reveal its signing secret below to verify deliveries.".to_owned()
        }
        ("saved", _) => "Webhook saved.".to_owned(),
        ("paused", _) => {
            "Webhook paused: deliveries wait in its queue until you resume it.".to_owned()
        }
        ("resumed", _) => "Webhook resumed.".to_owned(),
        ("deleted", _) => "Webhook deleted.".to_owned(),
        ("rotated", Some(n)) => format!("Signing secret rotated. {n}"),
        ("rotated", None) => "Signing secret rotated.".to_owned(),
        ("test_sent", Some(n)) => {
            format!("Test event sent (delivery {n}); it appears below in a moment.")
        }
        ("test_sent", None) => "Test event sent; it appears below in a moment.".to_owned(),
        ("test_filtered", Some(n)) => format!(
            "Test event sent (delivery {n}), but the example does not pass this webhook's filter: a published event like it would not be delivered here."
        ),
        ("test_filtered", None) => "Test event sent, but the example does not pass this webhook's filter: a published event like it would not be delivered here.".to_owned(),
        ("resent", _) => {
            "Delivery sent again; its new attempt appears below in a moment.".to_owned()
        }
        ("recovered", Some(n)) => format!("Recovery started: {n}."),
        ("recovered", None) => "Recovery started.".to_owned(),
        _ => return None,
    };
    Some(Flash { kind: "ok", text })
}

/// The details of a banner came from [`redirect_done`] for this session.
fn details_genuine(st: &AppState, s: &Session, done: &str, n: &str, sig: Option<&String>) -> bool {
    sig.is_some_and(|sig| st.signer.tag_matches(&["flash", &s.id, done, n], sig))
}

/// Redirects to `path` with a banner: `done` names a fixed message; `n`, its
/// details, is signed for this session (`sig`) so no other page can put words
/// in the banner.
fn redirect_done(st: &AppState, s: &Session, path: &str, done: &str, n: &str) -> Response {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("done", done);
    if !n.is_empty() {
        q.append_pair("n", n)
            .append_pair("sig", &st.signer.tag(&["flash", &s.id, done, n]));
    }
    Redirect::to(&format!("{path}?{}", q.finish())).into_response()
}

// ------------------------------------------------------------ sign-in, out

#[derive(Serialize)]
struct LoginPage {
    title: &'static str,
    errors: BTreeMap<&'static str, &'static str>,
    csrf: String,
}

pub async fn login_page(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    login_form(&st, &headers, StatusCode::OK, None)
}

/// The sign-in form (with its CSRF token, and the pre-session cookie it is
/// bound to when the browser has none yet), with the API key's error.
fn login_form(
    st: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&'static str>,
) -> Response {
    let (nonce, set) = super::login_nonce(st, headers);
    let ctx = LoginPage {
        title: "Sign in",
        errors: error.map(|e| ("api_key", e)).into_iter().collect(),
        csrf: super::login_csrf(st, &nonce),
    };
    let mut r = render(status, "login.html", ctx);
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

pub async fn login(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Form,
) -> PortalResult<Response> {
    if super::cross_site(&st.settings, &headers) {
        return Ok(message(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "This sign-in form was sent from another site. Open the portal's own sign-in page and sign in there.",
            Some(("/portal/login", "Go to the sign-in page")),
        ));
    }
    let token_ok = super::cookie(&headers, super::LOGIN_COOKIE).is_some_and(|nonce| {
        st.signer
            .tag_matches(&["login", &nonce], &form.get("csrf").unwrap_or_default())
    });
    if !token_ok {
        let expired = "This sign-in form has expired. Enter your API key again.";
        return Ok(login_form(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            Some(expired),
        ));
    }
    let key = form.get("api_key").unwrap_or_default();
    let refuse = |msg| {
        Ok(login_form(
            &st,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(msg),
        ))
    };
    if key.is_empty() {
        return refuse("Enter an API key of your tenant (it starts with hfk_).");
    }
    match hookfleet_store::tenants::live_api_key(&st.pool, &hash_key(&key)).await? {
        Some(k) => match k.tenant_id {
            Some(tenant) => super::start_session(&st, &headers, &tenant, Some(k.id), None).await,
            None => refuse("This key has no tenant."),
        },
        // The admin key is not a tenant: it has no portal of its own.
        None => refuse("This key is not valid: it is unknown or was revoked."),
    }
}

pub async fn auth_link(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Params,
) -> PortalResult<Response> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let tok = q.get("token").map(String::as_str).unwrap_or("");
    match st.links.verify(tok, "link", now) {
        Ok(c) => {
            let link = super::LinkUse {
                id: &c.nonce,
                exp: c.exp,
                since: c.since,
            };
            super::start_session(&st, &headers, &c.tenant, c.key_id.clone(), Some(link)).await
        }
        Err(super::token::Refused::Expired) => Ok(message(
            StatusCode::UNAUTHORIZED,
            "This portal link has expired",
            "Portal links work for a limited time. Ask for a new link, or sign in with an API key.",
            Some(("/portal/login", "Sign in with an API key")),
        )),
        Err(super::token::Refused::Invalid) => Ok(message(
            StatusCode::FORBIDDEN,
            "This portal link is not valid",
            "The link is incomplete or was changed. Copy the whole link again, or ask for a new one.",
            Some(("/portal/login", "Sign in with an API key")),
        )),
    }
}

pub async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    s: Session,
    _: CsrfForm,
) -> PortalResult<Response> {
    super::end_session(&st, &headers, &s).await
}

pub async fn not_found(_s: Session) -> PortalError {
    PortalError::NotFound
}

// ------------------------------------------------------------------- home

/// A webhook's health in the last 24 hours, as its list row and page show it.
#[derive(Serialize)]
struct Health {
    success_rate: Option<f64>,
    total: i64,
    last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    last_error_at: Option<OffsetDateTime>,
}

impl From<&Stats> for Health {
    fn from(s: &Stats) -> Self {
        Health {
            success_rate: s.success_rate,
            total: s.total,
            last_error: s.last_error.clone(),
            last_error_at: s.last_error_at,
        }
    }
}

/// A webhook with its health.
#[derive(Serialize)]
struct WebhookView {
    #[serde(flatten)]
    webhook: Webhook,
    health: Health,
    /// The content filter, indented for reading.
    filter_text: Option<String>,
}

impl WebhookView {
    fn new(webhook: Webhook, health: Health) -> Self {
        let filter_text = webhook.filter.as_ref().map(pretty);
        WebhookView {
            webhook,
            health,
            filter_text,
        }
    }
}

/// JSON indented for a page.
fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

#[derive(Serialize)]
struct HomePage {
    webhooks: Vec<WebhookView>,
    range: String,
    charts: Vec<Chart>,
    flash: Option<Flash>,
}

pub async fn home(
    State(st): State<Arc<AppState>>,
    s: Session,
    Query(q): Params,
) -> PortalResult<Response> {
    let range = q.get("range").cloned().unwrap_or_else(|| "day".into());
    let mut webhooks = vec![];
    for webhook in ops::webhooks(&st, &s.caller).await? {
        let health = Health::from(&ops::stats_24h(&st, &s.caller, &webhook.id).await?);
        webhooks.push(WebhookView::new(webhook, health));
    }
    let (range, charts) = match ops::activity(&st, &s.caller, range.clone()).await {
        Ok(a) => (a.range.clone(), charts(&a)),
        // An unknown range: no charts.
        Err(PortalError::Invalid { .. }) => (range, vec![]),
        Err(e) => return Err(e),
    };
    let flash = flash(&st, &s, &q);
    let ctx = HomePage {
        webhooks,
        range,
        charts,
        flash,
    };
    Ok(page(&s, "webhooks.html", "webhooks", "Webhooks", ctx))
}

// ------------------------------------------------------------- the webhook

/// A choice of a `<select>`.
#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
}

const GRACE_OPTIONS: [Choice; 4] = [
    Choice {
        value: "0s",
        label: "none: the old secret stops now",
    },
    Choice {
        value: "1h",
        label: "1 hour",
    },
    Choice {
        value: "24h",
        label: "24 hours",
    },
    Choice {
        value: "72h",
        label: "3 days",
    },
];

#[derive(Serialize)]
struct WebhookPage {
    webhook: WebhookView,
    stats: Stats,
    secret: Option<SecretOut>,
    deliveries: Vec<Delivery>,
    event_types: Vec<EventType>,
    grace_options: &'static [Choice],
    /// The recover form's `since`: a day ago, as `<input type=datetime-local>`.
    recover_default: String,
    flash: Option<Flash>,
}

async fn webhook_page(
    st: &Arc<AppState>,
    s: &Session,
    id: &str,
    secret: Option<SecretOut>,
    flash: Option<Flash>,
) -> PortalResult<Response> {
    let webhook = ops::webhook(st, &s.caller, id).await?;
    let stats = ops::stats_24h(st, &s.caller, id).await?;
    let deliveries = ops::recent_deliveries(st, &s.caller, id, 10).await?;
    let event_types = ops::catalog(st, &s.caller).await?;
    let day_ago = OffsetDateTime::now_utc() - time::Duration::days(1);
    let recover_default = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        day_ago.year(),
        day_ago.month() as u8,
        day_ago.day(),
        day_ago.hour(),
        day_ago.minute()
    );
    let title = webhook.url.clone();
    let ctx = WebhookPage {
        webhook: WebhookView::new(webhook, Health::from(&stats)),
        stats,
        secret,
        deliveries,
        event_types,
        grace_options: &GRACE_OPTIONS,
        recover_default,
        flash,
    };
    Ok(page(s, "webhook.html", "webhooks", &title, ctx))
}

/// The webhook's page with an action's invalid input in an error banner
/// (`what` failed: the message), or the error's own page for any other error.
async fn refused_on_page(
    st: &Arc<AppState>,
    s: &Session,
    id: &str,
    what: &str,
    e: PortalError,
) -> PortalResult<Response> {
    let Some(m) = e.invalid_message() else {
        return Err(e);
    };
    let flash = Flash {
        kind: "error",
        text: format!("{what}: {m}"),
    };
    webhook_page(st, s, id, None, Some(flash)).await
}

pub async fn webhook(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Params,
) -> PortalResult<Response> {
    webhook_page(&st, &s, &id, None, flash(&st, &s, &q)).await
}

pub async fn reveal_secret(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    _: CsrfForm,
) -> PortalResult<Response> {
    let secret = ops::secret(&st, &s.caller, &id).await?;
    webhook_page(&st, &s, &id, Some(secret), None).await
}

pub async fn rotate(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    let grace = form.get("grace").unwrap_or_else(|| "24h".into());
    let secs = humantime::parse_duration(&grace)
        .map_err(|_| PortalError::invalid("grace", "must be a duration such as 24h"))?
        .as_secs();
    ops::rotate_secret(&st, &s.caller, &id, secs).await?;
    let n = if secs == 0 {
        "The old secret no longer signs.".to_owned()
    } else {
        format!(
            "The old secret keeps signing alongside the new one for {}.",
            humantime::format_duration(std::time::Duration::from_secs(secs))
        )
    };
    Ok(redirect_done(&st, &s, &webhook_path(&id), "rotated", &n))
}

pub async fn send_test(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    let event_type = form.get("event_type").unwrap_or_default();
    match ops::send_test(&st, &s.caller, &id, event_type).await {
        Ok(sent) => Ok(redirect_done(
            &st,
            &s,
            &webhook_path(&id),
            if sent.filter_matched {
                "test_sent"
            } else {
                "test_filtered"
            },
            &sent.delivery_id,
        )),
        Err(e) => refused_on_page(&st, &s, &id, "Test event not sent", e).await,
    }
}

pub async fn recover(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    let since = local_to_rfc3339(&form.get("since").unwrap_or_default());
    match ops::recover(&st, &s.caller, &id, since).await {
        Ok(r) => {
            let n = format!(
                "{} replayed from the dead letters, {} re-sent",
                r.replayed_from_dead_letters, r.resent
            );
            Ok(redirect_done(&st, &s, &webhook_path(&id), "recovered", &n))
        }
        Err(e) => refused_on_page(&st, &s, &id, "Not recovered", e).await,
    }
}

async fn set_active(
    st: &Arc<AppState>,
    s: &Session,
    id: &str,
    active: bool,
) -> PortalResult<Response> {
    ops::set_active(st, &s.caller, id, active).await?;
    let done = if active { "resumed" } else { "paused" };
    Ok(redirect_done(st, s, &webhook_path(id), done, ""))
}

pub async fn pause(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    _: CsrfForm,
) -> PortalResult<Response> {
    set_active(&st, &s, &id, false).await
}

pub async fn resume(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    _: CsrfForm,
) -> PortalResult<Response> {
    set_active(&st, &s, &id, true).await
}

#[derive(Serialize)]
struct DeletePage {
    webhook: Webhook,
    errors: BTreeMap<&'static str, &'static str>,
}

pub async fn delete_form(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
) -> PortalResult<Response> {
    let webhook = ops::webhook(&st, &s.caller, &id).await?;
    let ctx = DeletePage {
        webhook,
        errors: BTreeMap::new(),
    };
    Ok(page(&s, "delete.html", "webhooks", "Delete webhook", ctx))
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    if form.get("confirm").as_deref() != Some("yes") {
        let ctx = DeletePage {
            webhook: ops::webhook(&st, &s.caller, &id).await?,
            errors: BTreeMap::from([("confirm", "Tick the box to confirm.")]),
        };
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(page_status(
            &s,
            status,
            "delete.html",
            "webhooks",
            "Delete webhook",
            ctx,
        ));
    }
    ops::delete_webhook(&st, &s.caller, &id).await?;
    Ok(redirect_done(&st, &s, "/portal/", "deleted", ""))
}

// ------------------------------------------------------ create and edit

/// The webhook form's values, for display.
#[derive(Serialize)]
struct FormValues {
    url: Option<String>,
    description: Option<String>,
    events: Vec<String>,
    rate_limit: Option<String>,
    max_in_flight: Option<String>,
    ordering: String,
    /// The content filter as JSON text; empty: none.
    filter: Option<String>,
}

impl FormValues {
    /// An empty form: parallel ordering.
    fn new() -> Self {
        FormValues {
            url: None,
            description: None,
            events: vec![],
            rate_limit: None,
            max_in_flight: None,
            ordering: "parallel".into(),
            filter: None,
        }
    }

    /// What was typed, for re-display.
    fn typed(form: &Form) -> Self {
        FormValues {
            url: form.get("url"),
            description: form.get("description"),
            events: form.all("events"),
            rate_limit: form.get("rate_limit"),
            max_in_flight: form.get("max_in_flight"),
            ordering: form.get("ordering").unwrap_or_else(|| "parallel".into()),
            filter: form.get("filter"),
        }
    }

    /// The webhook as it is.
    fn of(w: &Webhook) -> Self {
        FormValues {
            url: Some(w.url.clone()),
            description: Some(w.description.clone()),
            events: w.events.clone(),
            rate_limit: w.rate_limit.map(|n| n.to_string()),
            max_in_flight: w.max_in_flight.map(|n| n.to_string()),
            ordering: w.ordering.to_string(),
            filter: w.filter.as_ref().map(pretty),
        }
    }
}

/// An optional whole number field: empty → `None`.
fn number(form: &Form, field: &str) -> Result<Option<i32>, FieldErrors> {
    let parse = |v: String| {
        v.parse::<i32>().map_err(|_| {
            let m = "must be a whole number, or empty";
            BTreeMap::from([(field.to_owned(), m.to_owned())])
        })
    };
    form.get(field).map(parse).transpose()
}

/// The form's rate limit and maximum in flight; the first that is not a
/// number is named.
fn limits(form: &Form) -> Result<(Option<i32>, Option<i32>), FieldErrors> {
    Ok((number(form, "rate_limit")?, number(form, "max_in_flight")?))
}

/// The form's content filter: JSON text, empty for none. Its rules are
/// checked by the service, as for the API.
fn filter_field(form: &Form) -> Result<Option<serde_json::Value>, FieldErrors> {
    let Some(text) = form.get("filter").filter(|t| !t.trim().is_empty()) else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        let m = format!("is not valid JSON: {e}");
        BTreeMap::from([("filter".to_owned(), m)])
    })
}

/// The form's limits and filter, or the errors to show.
fn form_parts(form: &Form) -> Result<FormParts, FieldErrors> {
    let (rate_limit, max_in_flight) = limits(form)?;
    let filter = filter_field(form)?;
    Ok((rate_limit, max_in_flight, filter))
}

type FormParts = (Option<i32>, Option<i32>, Option<serde_json::Value>);

#[derive(Serialize)]
struct FormPage {
    /// The webhook edited; `None` for a new one.
    webhook: Option<Webhook>,
    form: FormValues,
    errors: FieldErrors,
    event_types: Vec<EventType>,
}

async fn form_page(
    st: &Arc<AppState>,
    s: &Session,
    status: StatusCode,
    webhook: Option<Webhook>,
    form: FormValues,
    errors: FieldErrors,
) -> PortalResult<Response> {
    let event_types = ops::catalog(st, &s.caller).await?;
    let title = if webhook.is_some() {
        "Edit webhook"
    } else {
        "New webhook"
    };
    let ctx = FormPage {
        webhook,
        form,
        errors,
        event_types,
    };
    Ok(page_status(
        s,
        status,
        "webhook_form.html",
        "webhooks",
        title,
        ctx,
    ))
}

pub async fn new_form(State(st): State<Arc<AppState>>, s: Session) -> PortalResult<Response> {
    form_page(
        &st,
        &s,
        StatusCode::OK,
        None,
        FormValues::new(),
        BTreeMap::new(),
    )
    .await
}

pub async fn create(
    State(st): State<Arc<AppState>>,
    s: Session,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    let values = FormValues::typed(&form);
    let (rate_limit, max_in_flight, filter) = match form_parts(&form) {
        Ok(l) => l,
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return form_page(&st, &s, status, None, values, errors).await;
        }
    };
    let new = ops::NewWebhook {
        url: form.get("url").unwrap_or_default(),
        events: form.all("events"),
        description: form.get("description").unwrap_or_default(),
        rate_limit,
        max_in_flight,
        ordering: form.get("ordering"),
        filter,
    };
    match ops::create_webhook(&st, &s.caller, new).await {
        Ok(w) => Ok(redirect_done(&st, &s, &webhook_path(&w.id), "created", "")),
        // Invalid or conflicting: the form again, the error by its field.
        Err(e) => match e.field_errors() {
            Some(errors) => form_page(&st, &s, e.status(), None, values, errors).await,
            None => Err(e),
        },
    }
}

pub async fn edit_form(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
) -> PortalResult<Response> {
    let w = ops::webhook(&st, &s.caller, &id).await?;
    let values = FormValues::of(&w);
    form_page(&st, &s, StatusCode::OK, Some(w), values, BTreeMap::new()).await
}

pub async fn edit(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    let (rate_limit, max_in_flight, filter) = match form_parts(&form) {
        Ok(l) => l,
        Err(errors) => {
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            return edit_again(&st, &s, &id, &form, status, errors).await;
        }
    };
    let edit = ops::WebhookEdit {
        url: form.get("url").unwrap_or_default(),
        events: form.all("events"),
        description: form.get("description").unwrap_or_default(),
        rate_limit,
        max_in_flight,
        filter,
    };
    match ops::edit_webhook(&st, &s.caller, &id, edit).await {
        Ok(()) => Ok(redirect_done(&st, &s, &webhook_path(&id), "saved", "")),
        Err(e @ PortalError::Invalid { .. }) => {
            let errors = e.field_errors().unwrap_or_default();
            edit_again(&st, &s, &id, &form, e.status(), errors).await
        }
        Err(e) => Err(e),
    }
}

/// The edit form again, with what was typed and the errors.
async fn edit_again(
    st: &Arc<AppState>,
    s: &Session,
    id: &str,
    form: &Form,
    status: StatusCode,
    errors: FieldErrors,
) -> PortalResult<Response> {
    let w = ops::webhook(st, &s.caller, id).await?;
    let mut values = FormValues::typed(form);
    values.ordering = w.ordering.to_string();
    form_page(st, s, status, Some(w), values, errors).await
}

// ------------------------------------------------------------- deliveries

/// A webhook of a filter form's choice.
#[derive(Serialize)]
struct WebhookChoice {
    id: String,
    url: String,
}

/// What the filter forms of the lists offer: the tenant's webhooks and the
/// catalog.
struct Lists {
    webhooks: Vec<WebhookChoice>,
    types: Vec<EventType>,
}

impl Lists {
    async fn of(st: &Arc<AppState>, caller: &Caller) -> PortalResult<Lists> {
        let webhooks = ops::webhooks(st, caller).await?;
        let webhooks = webhooks
            .into_iter()
            .map(|w| WebhookChoice {
                id: w.id,
                url: w.url,
            })
            .collect();
        let types = ops::catalog(st, caller).await?;
        Ok(Lists { webhooks, types })
    }

    /// A row of a list, with its webhook's URL (empty when not the tenant's).
    fn with_url<T>(&self, item: T, webhook_id: &str) -> WithUrl<T> {
        let webhook_url = self
            .webhooks
            .iter()
            .find(|w| w.id == webhook_id)
            .map(|w| w.url.clone())
            .unwrap_or_default();
        WithUrl { item, webhook_url }
    }
}

/// A row of a list with its webhook's URL.
#[derive(Serialize)]
struct WithUrl<T> {
    #[serde(flatten)]
    item: T,
    webhook_url: String,
}

const STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "dead"];

/// The deliveries page's filters, as typed.
#[derive(Serialize)]
struct DeliveryFilters {
    webhook: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

impl DeliveryFilters {
    fn of(q: &HashMap<String, String>) -> Self {
        DeliveryFilters {
            webhook: param(q, "webhook"),
            status: param(q, "status"),
            event_type: param(q, "event_type"),
            since: param(q, "since"),
            until: param(q, "until"),
        }
    }

    /// The operation's filter: a page of 50 after `cursor`.
    fn query(&self, cursor: Option<String>) -> ops::DeliveryFilter {
        ops::DeliveryFilter {
            webhook: self.webhook.clone(),
            status: self.status.clone(),
            event_type: self.event_type.clone(),
            since: self.since.as_deref().map(local_to_rfc3339),
            until: self.until.as_deref().map(local_to_rfc3339),
            cursor,
            limit: 50,
        }
    }

    /// The address of the page after `cursor`, with the same filters.
    fn next_page(&self, cursor: &str) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        let pairs = [
            ("webhook", &self.webhook),
            ("status", &self.status),
            ("event_type", &self.event_type),
            ("since", &self.since),
            ("until", &self.until),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                ser.append_pair(k, v);
            }
        }
        ser.append_pair("cursor", cursor);
        format!("/portal/deliveries?{}", ser.finish())
    }
}

#[derive(Serialize)]
struct DeliveriesPage {
    deliveries: Vec<WithUrl<ScopedDelivery>>,
    filters: DeliveryFilters,
    errors: FieldErrors,
    webhooks: Vec<WebhookChoice>,
    event_types: Vec<EventType>,
    statuses: [&'static str; 4],
    /// The next page's address.
    next: Option<String>,
}

pub async fn deliveries(
    State(st): State<Arc<AppState>>,
    s: Session,
    Query(q): Params,
) -> PortalResult<Response> {
    let filters = DeliveryFilters::of(&q);
    let lists = Lists::of(&st, &s.caller).await?;
    let query = filters.query(param(&q, "cursor"));
    let (deliveries, next, errors) = match ops::deliveries(&st, &s.caller, query).await {
        Ok((list, cursor)) => {
            let rows = list
                .into_iter()
                .map(|d| {
                    let webhook = d.webhook_id.clone();
                    lists.with_url(d, &webhook)
                })
                .collect();
            (rows, cursor.map(|c| filters.next_page(&c)), BTreeMap::new())
        }
        // A filter that does not parse, or a webhook that is not the
        // tenant's: said next to the filter.
        Err(e @ PortalError::Invalid { .. }) => {
            (vec![], None, e.field_errors().unwrap_or_default())
        }
        Err(PortalError::NotFound) => {
            let errors = BTreeMap::from([("webhook".into(), "no such webhook".into())]);
            (vec![], None, errors)
        }
        Err(e) => return Err(e),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let ctx = DeliveriesPage {
        deliveries,
        filters,
        errors,
        webhooks: lists.webhooks,
        event_types: lists.types,
        statuses: STATUSES,
        next,
    };
    Ok(page_status(
        &s,
        status,
        "deliveries.html",
        "deliveries",
        "Deliveries",
        ctx,
    ))
}

/// A header of a delivery.
#[derive(Serialize)]
struct Header {
    name: String,
    value: String,
}

impl Header {
    fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// The headers every attempt of `d` sends: the signature's, then the
/// webhook's own.
fn headers_sent(d: &Delivery, w: &Webhook) -> Vec<Header> {
    let mut headers = vec![
        Header::new("content-type", "application/json"),
        Header::new("webhook-id", d.event_id.clone()),
        Header::new(
            "webhook-timestamp",
            "the time of each attempt (Unix seconds)",
        ),
        Header::new(
            "webhook-signature",
            "v1,<base64 HMAC-SHA256> computed at each attempt with the webhook's signing secret(s)",
        ),
    ];
    headers.extend(w.headers.iter().map(|(k, v)| Header::new(k, v)));
    headers
}

#[derive(Serialize)]
struct DeliveryPage {
    delivery: Delivery,
    webhook: Webhook,
    payload_pretty: String,
    headers_sent: Vec<Header>,
    flash: Option<Flash>,
}

pub async fn delivery(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Params,
) -> PortalResult<Response> {
    let webhook_id = q.get("webhook").cloned().unwrap_or_default();
    let webhook = ops::webhook(&st, &s.caller, &webhook_id).await?;
    let delivery = ops::delivery(&st, &s.caller, &webhook_id, &id).await?;
    let payload_pretty = delivery
        .payload
        .as_ref()
        .and_then(|p| serde_json::to_string_pretty(p).ok())
        .unwrap_or_default();
    let ctx = DeliveryPage {
        headers_sent: headers_sent(&delivery, &webhook),
        delivery,
        webhook,
        payload_pretty,
        flash: flash(&st, &s, &q),
    };
    Ok(page(
        &s,
        "delivery.html",
        "deliveries",
        &format!("Delivery {id}"),
        ctx,
    ))
}

pub async fn resend(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Params,
    _: CsrfForm,
) -> PortalResult<Response> {
    let webhook_id = q.get("webhook").cloned().unwrap_or_default();
    ops::resend(&st, &s.caller, &webhook_id, &id).await?;
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("webhook", &webhook_id)
        .append_pair("done", "resent")
        .finish();
    Ok(Redirect::to(&format!("/portal/deliveries/{id}?{q}")).into_response())
}

// ----------------------------------------------------------- dead letters

#[derive(Serialize)]
struct DeadLetterFilters {
    webhook: Option<String>,
    event_type: Option<String>,
}

/// The banner after a replay was started.
#[derive(Serialize)]
struct Report {
    message: &'static str,
}

#[derive(Serialize)]
struct DeadLettersPage {
    dead_letters: Vec<WithUrl<DeadLetter>>,
    filters: DeadLetterFilters,
    webhooks: Vec<WebhookChoice>,
    event_types: Vec<EventType>,
    report: Option<Report>,
}

pub async fn dead_letters(
    State(st): State<Arc<AppState>>,
    s: Session,
    Query(q): Params,
) -> PortalResult<Response> {
    let filters = DeadLetterFilters {
        webhook: param(&q, "webhook"),
        event_type: param(&q, "event_type"),
    };
    let lists = Lists::of(&st, &s.caller).await?;
    let only = ops::DeadLetterFilter {
        webhook: filters.webhook.clone(),
        event_type: filters.event_type.clone(),
        delivery_id: None,
    };
    let list = ops::dead_letters(&st, &s.caller, only, 100).await?;
    let dead_letters = list
        .into_iter()
        .map(|d| {
            let webhook = d.endpoint_id.clone();
            lists.with_url(d, &webhook)
        })
        .collect();
    // A fixed, server-chosen message: nothing from the query string is shown.
    let report = (q.get("done").map(String::as_str) == Some("replay_started")).then_some(Report {
        message:
            "Replay started: the dead letters that match are being sent again. Refresh to follow.",
    });
    let ctx = DeadLettersPage {
        dead_letters,
        filters,
        webhooks: lists.webhooks,
        event_types: lists.types,
        report,
    };
    Ok(page(
        &s,
        "dead_letters.html",
        "dead_letters",
        "Dead letters",
        ctx,
    ))
}

pub async fn replay(
    State(st): State<Arc<AppState>>,
    s: Session,
    CsrfForm(form): CsrfForm,
) -> PortalResult<Response> {
    let which = ops::DeadLetterFilter {
        delivery_id: form.get("delivery_id"),
        webhook: form.get("webhook"),
        event_type: form.get("event_type"),
    };
    ops::replay(&st, &s.caller, which).await?;
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    ser.append_pair("done", "replay_started");
    for k in ["webhook", "event_type"] {
        if let Some(v) = form.get(k) {
            ser.append_pair(k, &v);
        }
    }
    Ok(Redirect::to(&format!("/portal/dead-letters?{}", ser.finish())).into_response())
}

// ------------------------------------------------------------------ events

/// An event type with its schema and example as JSON text.
#[derive(Serialize)]
struct EventTypeView {
    #[serde(flatten)]
    event_type: EventType,
    schema_pretty: String,
    example_pretty: String,
}

#[derive(Serialize)]
struct EventsPage {
    event_types: Vec<EventTypeView>,
}

pub async fn events(State(st): State<Arc<AppState>>, s: Session) -> PortalResult<Response> {
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let event_types = ops::catalog(&st, &s.caller)
        .await?
        .into_iter()
        .map(|t| EventTypeView {
            schema_pretty: pretty(&t.schema),
            example_pretty: pretty(&t.example),
            event_type: t,
        })
        .collect();
    let ctx = EventsPage { event_types };
    Ok(page(&s, "events.html", "events", "Event catalog", ctx))
}
