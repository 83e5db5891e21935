//! The portal's pages and actions. Each one calls the REST handler that does
//! the same thing, with the session's tenant as the caller.
use super::{api_error, message, page, page_status, render, Form, Session};
use crate::auth::{hash_key, Caller};
use crate::error::{ApiError, JsonBody, QueryParams};
use crate::{dead_letters as dl, deliveries as dv, events as ev, webhooks as wh, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

type Params = Query<HashMap<String, String>>;

fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `<input type=datetime-local>` (UTC) → RFC 3339; other text is passed on
/// as typed, for the API to accept or name.
fn local_to_rfc3339(v: &str) -> String {
    match v.len() {
        16 => format!("{v}:00Z"),
        19 => format!("{v}Z"),
        _ => v.to_owned(),
    }
}

/// The flash banner of a page reached after an action (`?done=…`): one of a
/// fixed set of messages. Its details (`n`: a delivery id, a count, the grace
/// period) are shown only when `sig` proves the server put them there for this
/// session ([`redirect_done`]); any other text in the address is ignored.
fn flash(st: &AppState, s: &Session, p: &HashMap<String, String>) -> Value {
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
        ("resent", _) => {
            "Delivery sent again; its new attempt appears below in a moment.".to_owned()
        }
        ("recovered", Some(n)) => format!("Recovery started: {n}."),
        ("recovered", None) => "Recovery started.".to_owned(),
        _ => return Value::Null,
    };
    json!({"kind": "ok", "text": text})
}

/// The details of a banner came from [`redirect_done`] for this session.
fn details_genuine(st: &AppState, s: &Session, done: &str, n: &str, sig: Option<&String>) -> bool {
    sig.is_some_and(|sig| st.signer.tag_matches(&["flash", &s.id, done, n], sig))
}

async fn catalog(st: &Arc<AppState>, caller: &Caller) -> Result<Vec<Value>, ApiError> {
    let Json(page) = ev::catalog(State(st.clone()), caller.clone()).await?;
    Ok(page.data.into_iter().map(to_value).collect())
}

async fn all_webhooks(st: &Arc<AppState>, caller: &Caller) -> Result<Vec<Value>, ApiError> {
    let Json(page) = wh::list(
        State(st.clone()),
        caller.clone(),
        QueryParams(wh::ListQuery {
            is_active: None,
            event_type: None,
            cursor: None,
            limit: Some(crate::MAX_LIMIT),
        }),
    )
    .await?;
    Ok(page.data.into_iter().map(to_value).collect())
}

async fn stats(st: &Arc<AppState>, caller: &Caller, id: &str) -> Result<Value, ApiError> {
    let Json(s) = dv::stats(
        State(st.clone()),
        caller.clone(),
        Path(id.to_owned()),
        QueryParams(dv::StatsQuery {
            window: Some("24h".into()),
        }),
    )
    .await?;
    Ok(to_value(s))
}

fn health(stats: &Value) -> Value {
    json!({
        "success_rate": stats["success_rate"],
        "total": stats["total"],
        "last_error": stats["last_error"],
        "last_error_at": stats["last_error_at"],
    })
}

// ------------------------------------------------------------ sign-in, out

pub async fn login_page(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    login_form(&st, &headers, StatusCode::OK, json!({}))
}

/// The sign-in form (with its CSRF token, and the pre-session cookie it is
/// bound to when the browser has none yet).
fn login_form(st: &AppState, headers: &HeaderMap, status: StatusCode, errors: Value) -> Response {
    let (nonce, set) = super::login_nonce(st, headers);
    let mut r = render(
        status,
        "login.html",
        json!({"title": "Sign in", "form": {}, "errors": errors,
               "csrf": super::login_csrf(st, &nonce)}),
    );
    if let Some(c) = set {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

pub async fn login(State(st): State<Arc<AppState>>, headers: HeaderMap, form: Form) -> Response {
    if super::cross_site(&st.settings, &headers) {
        return message(
            StatusCode::FORBIDDEN,
            "Sign-in refused",
            "This sign-in form was sent from another site. Open the portal's own sign-in page and sign in there.",
            Some(("/portal/login", "Go to the sign-in page")),
        );
    }
    let token_ok = super::cookie(&headers, super::LOGIN_COOKIE).is_some_and(|nonce| {
        st.signer
            .tag_matches(&["login", &nonce], &form.get("csrf").unwrap_or_default())
    });
    if !token_ok {
        return login_form(
            &st,
            &headers,
            StatusCode::FORBIDDEN,
            json!({"api_key": "This sign-in form has expired. Enter your API key again."}),
        );
    }
    let key = form.get("api_key").unwrap_or_default();
    let refuse = |msg: &str| {
        login_form(
            &st,
            &headers,
            StatusCode::UNAUTHORIZED,
            json!({"api_key": msg}),
        )
    };
    if key.is_empty() {
        return refuse("Enter an API key of your tenant (it starts with hfk_).");
    }
    match hookfleet_store::tenants::live_api_key(&st.pool, &hash_key(&key)).await {
        Ok(Some(k)) => match k.tenant_id {
            Some(tenant) => super::start_session(&st, &headers, &tenant, Some(k.id), None).await,
            None => refuse("This key has no tenant."),
        },
        // The admin key is not a tenant: it has no portal of its own.
        Ok(None) => refuse("This key is not valid: it is unknown or was revoked."),
        Err(e) => api_error(e.into()),
    }
}

pub async fn auth_link(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Params,
) -> Response {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let tok = q.get("token").map(String::as_str).unwrap_or("");
    match st.signer.verify(tok, "link", now) {
        Ok(c) => {
            let link = super::LinkUse {
                id: &c.nonce,
                exp: c.exp,
            };
            super::start_session(&st, &headers, &c.tenant, c.key_id.clone(), Some(link)).await
        }
        Err(super::token::Refused::Expired) => message(
            StatusCode::UNAUTHORIZED,
            "This portal link has expired",
            "Portal links work for a limited time. Ask for a new link, or sign in with an API key.",
            Some(("/portal/login", "Sign in with an API key")),
        ),
        Err(super::token::Refused::Invalid) => message(
            StatusCode::FORBIDDEN,
            "This portal link is not valid",
            "The link is incomplete or was changed. Copy the whole link again, or ask for a new one.",
            Some(("/portal/login", "Sign in with an API key")),
        ),
    }
}

pub async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    s: Session,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    super::end_session(&st, &headers, &s).await
}

pub async fn not_found(_s: Session) -> Response {
    api_error(ApiError::not_found("page"))
}

// ------------------------------------------------------------------- home

/// Three charts drawn from the activity buckets, in a 600×160 viewBox.
fn charts(activity: &dv::Activity) -> Value {
    let (w, h, top, bottom) = (600.0f64, 160.0f64, 10.0f64, 150.0f64);
    let n = activity.buckets.len().max(1) as f64;
    let bw = w / n;
    let x_mid = |i: usize| bw * i as f64 + bw / 2.0;
    let y_of = |frac: f64| bottom - frac.clamp(0.0, 1.0) * (bottom - top);
    let label = |t: time::OffsetDateTime| {
        if activity.bucket_seconds >= 3600 {
            format!(
                "{:04}-{:02}-{:02} {:02}:00 UTC",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour()
            )
        } else {
            format!("{:02}:{:02} UTC", t.hour(), t.minute())
        }
    };
    let x_start = activity
        .buckets
        .first()
        .map(|b| label(b.start))
        .unwrap_or_default();
    let total: i64 = activity.buckets.iter().map(|b| b.attempts).sum();
    let ok: i64 = activity.buckets.iter().map(|b| b.succeeded).sum();
    let max_attempts = activity
        .buckets
        .iter()
        .map(|b| b.attempts)
        .max()
        .unwrap_or(0)
        .max(1);
    let bars: Vec<Value> = activity
        .buckets
        .iter()
        .enumerate()
        .filter(|(_, b)| b.attempts > 0)
        .map(|(i, b)| {
            let y = y_of(b.attempts as f64 / max_attempts as f64);
            json!({"x": bw * i as f64 + 1.0, "y": y, "w": (bw - 2.0).max(1.0), "h": bottom - y,
                   "title": format!("{}: {} attempts, {} failed", label(b.start), b.attempts, b.failed)})
        })
        .collect();
    let series = |f: &dyn Fn(&dv::Bucket) -> Option<(f64, String)>| {
        let pts: Vec<(f64, f64, String)> = activity
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                f(b).map(|(frac, t)| (x_mid(i), y_of(frac), format!("{}: {t}", label(b.start))))
            })
            .collect();
        let line = pts
            .iter()
            .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ");
        let dots: Vec<Value> = pts
            .into_iter()
            .map(|(x, y, t)| json!({"x": x, "y": y, "title": t}))
            .collect();
        (line, dots)
    };
    let (rate_line, rate_dots) = series(&|b| {
        (b.attempts > 0).then(|| {
            let r = b.succeeded as f64 / b.attempts as f64;
            (r, format!("{:.1}% succeeded", r * 100.0))
        })
    });
    let max_p95 = activity
        .buckets
        .iter()
        .filter_map(|b| b.latency_ms_p95)
        .fold(0.0f64, f64::max);
    let (lat_line, lat_dots) = series(&|b| {
        b.latency_ms_p95.map(|p| {
            (
                if max_p95 > 0.0 { p / max_p95 } else { 0.0 },
                format!("p95 {p:.0} ms"),
            )
        })
    });
    let common = json!({"width": w, "height": h, "x_start_label": x_start, "x_end_label": "now"});
    let chart = |id: &str,
                 title: &str,
                 summary: String,
                 y_max: String,
                 bars: Vec<Value>,
                 line: String,
                 dots: Vec<Value>| {
        let mut c = common.clone();
        c["id"] = id.into();
        c["title"] = title.into();
        c["summary"] = summary.into();
        c["y_max_label"] = y_max.into();
        c["bars"] = bars.into();
        c["line"] = line.into();
        c["dots"] = dots.into();
        c
    };
    json!([
        chart(
            "deliveries",
            "Delivery attempts",
            format!("{total} attempts"),
            format!("{max_attempts} per {} min", activity.bucket_seconds / 60),
            bars,
            String::new(),
            vec![]
        ),
        chart(
            "success",
            "Success rate",
            if total > 0 {
                format!("{:.1}% succeeded", ok as f64 * 100.0 / total as f64)
            } else {
                "no attempts".into()
            },
            "100%".into(),
            vec![],
            rate_line,
            rate_dots
        ),
        chart(
            "latency",
            "p95 latency",
            if max_p95 > 0.0 {
                format!("highest {max_p95:.0} ms")
            } else {
                "no attempts".into()
            },
            format!("{max_p95:.0} ms"),
            vec![],
            lat_line,
            lat_dots
        ),
    ])
}

pub async fn home(State(st): State<Arc<AppState>>, s: Session, Query(q): Params) -> Response {
    let range = q.get("range").cloned().unwrap_or_else(|| "day".into());
    let mut webhooks = match all_webhooks(&st, &s.caller).await {
        Ok(w) => w,
        Err(e) => return api_error(e),
    };
    for w in &mut webhooks {
        let id = w["id"].as_str().unwrap_or_default().to_owned();
        match stats(&st, &s.caller, &id).await {
            Ok(stats) => w["health"] = health(&stats),
            Err(e) => return api_error(e),
        }
    }
    let activity = dv::activity(
        State(st.clone()),
        s.caller.clone(),
        QueryParams(dv::ActivityQuery {
            range: Some(range.clone()),
            webhook_id: None,
        }),
    )
    .await;
    let (range, charts) = match activity {
        Ok(Json(a)) => (a.range.clone(), charts(&a)),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => (range, json!([])),
        Err(e) => return api_error(e),
    };
    page(
        &s,
        "webhooks.html",
        "webhooks",
        "Webhooks",
        json!({"webhooks": webhooks, "range": range, "charts": charts, "flash": flash(&st, &s, &q)}),
    )
}

// ------------------------------------------------------------- the webhook

fn grace_options() -> Value {
    json!([
        {"value": "0s", "label": "none: the old secret stops now"},
        {"value": "1h", "label": "1 hour"},
        {"value": "24h", "label": "24 hours"},
        {"value": "72h", "label": "3 days"},
    ])
}

async fn webhook_page(
    st: &Arc<AppState>,
    s: &Session,
    id: &str,
    secret: Option<Value>,
    flash: Value,
) -> Response {
    let w = match wh::get(State(st.clone()), s.caller.clone(), Path(id.to_owned())).await {
        Ok(Json(w)) => w,
        Err(e) => return api_error(e),
    };
    let mut w = to_value(w);
    let stats = match stats(st, &s.caller, id).await {
        Ok(v) => v,
        Err(e) => return api_error(e),
    };
    w["health"] = health(&stats);
    let recent = dv::list(
        State(st.clone()),
        s.caller.clone(),
        Path(id.to_owned()),
        QueryParams(dv::ListQuery {
            status: None,
            event_type: None,
            since: None,
            until: None,
            cursor: None,
            limit: Some(10),
        }),
    )
    .await;
    let recent = match recent {
        Ok(Json(p)) => to_value(p.data),
        Err(e) => return api_error(e),
    };
    let types = match catalog(st, &s.caller).await {
        Ok(t) => t,
        Err(e) => return api_error(e),
    };
    let day_ago = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let recover_default = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        day_ago.year(),
        day_ago.month() as u8,
        day_ago.day(),
        day_ago.hour(),
        day_ago.minute()
    );
    let title = w["url"].as_str().unwrap_or("Webhook").to_owned();
    page(
        s,
        "webhook.html",
        "webhooks",
        &title,
        json!({
            "webhook": w, "stats": stats, "secret": secret, "deliveries": recent,
            "event_types": types, "grace_options": grace_options(),
            "recover_default": recover_default, "flash": flash,
        }),
    )
}

pub async fn webhook(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    webhook_page(&st, &s, &id, None, flash(&st, &s, &q)).await
}

pub async fn reveal_secret(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    match wh::secret(State(st.clone()), s.caller.clone(), Path(id.clone())).await {
        Ok(Json(secret)) => webhook_page(&st, &s, &id, Some(to_value(secret)), Value::Null).await,
        Err(e) => api_error(e),
    }
}

pub async fn rotate(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let grace = form.get("grace").unwrap_or_else(|| "24h".into());
    let secs = match humantime::parse_duration(&grace) {
        Ok(d) => d.as_secs(),
        Err(_) => return api_error(ApiError::invalid("grace", "must be a duration such as 24h")),
    };
    let body = axum::body::Bytes::from(json!({"grace_period_seconds": secs}).to_string());
    match wh::rotate(State(st.clone()), s.caller.clone(), Path(id.clone()), body).await {
        Ok(_) => {
            let n = if secs == 0 {
                "The old secret no longer signs.".to_owned()
            } else {
                format!(
                    "The old secret keeps signing alongside the new one for {}.",
                    humantime::format_duration(std::time::Duration::from_secs(secs))
                )
            };
            redirect_done(&st, &s, &format!("/portal/webhooks/{id}"), "rotated", &n)
        }
        Err(e) => api_error(e),
    }
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

pub async fn send_test(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let body = wh::TestSend {
        event_type: form.get("event_type").unwrap_or_default(),
    };
    match wh::test(
        State(st.clone()),
        s.caller.clone(),
        Path(id.clone()),
        JsonBody(body),
    )
    .await
    {
        Ok((_, Json(sent))) => redirect_done(
            &st,
            &s,
            &format!("/portal/webhooks/{id}"),
            "test_sent",
            &sent.delivery_id,
        ),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let flash =
                json!({"kind": "error", "text": format!("Test event not sent: {}", e.message)});
            webhook_page(&st, &s, &id, None, flash).await
        }
        Err(e) => api_error(e),
    }
}

pub async fn recover(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let since = local_to_rfc3339(&form.get("since").unwrap_or_default());
    match dl::recover(
        State(st.clone()),
        s.caller.clone(),
        Path(id.clone()),
        JsonBody(dl::RecoverBody { since }),
    )
    .await
    {
        Ok((_, Json(r))) => redirect_done(
            &st,
            &s,
            &format!("/portal/webhooks/{id}"),
            "recovered",
            &format!(
                "{} replayed from the dead letters, {} re-sent",
                r.replayed_from_dead_letters, r.resent
            ),
        ),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let flash = json!({"kind": "error", "text": format!("Not recovered: {}", e.message)});
            webhook_page(&st, &s, &id, None, flash).await
        }
        Err(e) => api_error(e),
    }
}

async fn set_active(
    st: Arc<AppState>,
    s: Session,
    id: String,
    form: Form,
    active: bool,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let patch = wh::UpdateWebhook {
        is_active: Some(active),
        ..Default::default()
    };
    match wh::update(
        State(st.clone()),
        s.caller.clone(),
        Path(id.clone()),
        JsonBody(patch),
    )
    .await
    {
        Ok(_) => redirect_done(
            &st,
            &s,
            &format!("/portal/webhooks/{id}"),
            if active { "resumed" } else { "paused" },
            "",
        ),
        Err(e) => api_error(e),
    }
}

pub async fn pause(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    set_active(st, s, id, form, false).await
}

pub async fn resume(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    set_active(st, s, id, form, true).await
}

pub async fn delete_form(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
) -> Response {
    match wh::get(State(st), s.caller.clone(), Path(id)).await {
        Ok(Json(w)) => page(
            &s,
            "delete.html",
            "webhooks",
            "Delete webhook",
            json!({"webhook": w, "errors": {}}),
        ),
        Err(e) => api_error(e),
    }
}

pub async fn delete(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    if form.get("confirm").as_deref() != Some("yes") {
        return match wh::get(State(st), s.caller.clone(), Path(id)).await {
            Ok(Json(w)) => page_status(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "delete.html",
                "webhooks",
                "Delete webhook",
                json!({"webhook": w, "errors": {"confirm": "Tick the box to confirm."}}),
            ),
            Err(e) => api_error(e),
        };
    }
    match wh::delete(State(st.clone()), s.caller.clone(), Path(id)).await {
        Ok(_) => redirect_done(&st, &s, "/portal/", "deleted", ""),
        Err(e) => api_error(e),
    }
}

// ------------------------------------------------------ create and edit

/// The form's values, as typed, for re-display.
fn form_values(form: &Form) -> Value {
    json!({
        "url": form.get("url"), "description": form.get("description"),
        "events": form.all("events"), "rate_limit": form.get("rate_limit"),
        "max_in_flight": form.get("max_in_flight"),
        "ordering": form.get("ordering").unwrap_or_else(|| "parallel".into()),
    })
}

/// An optional whole number field: empty → `None`.
fn number(form: &Form, field: &str) -> Result<Option<i32>, (String, String)> {
    form.get(field)
        .map(|v| {
            v.parse::<i32>().map_err(|_| {
                (
                    field.to_owned(),
                    "must be a whole number, or empty".to_owned(),
                )
            })
        })
        .transpose()
}

async fn form_page(
    st: &Arc<AppState>,
    s: &Session,
    status: StatusCode,
    webhook: Option<Value>,
    form: Value,
    errors: BTreeMap<String, String>,
) -> Response {
    let types = match catalog(st, &s.caller).await {
        Ok(t) => t,
        Err(e) => return api_error(e),
    };
    let title = if webhook.is_some() {
        "Edit webhook"
    } else {
        "New webhook"
    };
    page_status(
        s,
        status,
        "webhook_form.html",
        "webhooks",
        title,
        json!({"webhook": webhook, "form": form, "errors": errors, "event_types": types}),
    )
}

/// A REST error on a form: next to its field when it names one.
fn field_errors(e: &ApiError) -> BTreeMap<String, String> {
    let field = match e.field.as_deref() {
        Some(f) if f.starts_with("events") => "events",
        Some(f) => f,
        None => "form",
    };
    BTreeMap::from([(field.to_owned(), e.message.clone())])
}

pub async fn new_form(State(st): State<Arc<AppState>>, s: Session) -> Response {
    let form = json!({"events": [], "ordering": "parallel"});
    form_page(&st, &s, StatusCode::OK, None, form, BTreeMap::new()).await
}

pub async fn create(State(st): State<Arc<AppState>>, s: Session, form: Form) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let values = form_values(&form);
    let (rate_limit, max_in_flight) =
        match (number(&form, "rate_limit"), number(&form, "max_in_flight")) {
            (Ok(r), Ok(m)) => (r, m),
            (Err((f, m)), _) | (_, Err((f, m))) => {
                return form_page(
                    &st,
                    &s,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    values,
                    BTreeMap::from([(f, m)]),
                )
                .await
            }
        };
    let body = wh::CreateWebhook {
        url: form.get("url").unwrap_or_default(),
        events: form.all("events"),
        description: form.get("description").unwrap_or_default(),
        is_active: None,
        headers: Default::default(),
        metadata: None,
        secret: None,
        rate_limit,
        max_in_flight,
        retry_schedule: None,
        ordering: form.get("ordering"),
    };
    match wh::create(State(st.clone()), s.caller.clone(), JsonBody(body)).await {
        Ok((_, Json(w))) => redirect_done(
            &st,
            &s,
            &format!("/portal/webhooks/{}", w.id),
            "created",
            "",
        ),
        Err(e)
            if matches!(
                e.status,
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::CONFLICT
            ) =>
        {
            let errors = field_errors(&e);
            form_page(&st, &s, e.status, None, values, errors).await
        }
        Err(e) => api_error(e),
    }
}

pub async fn edit_form(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
) -> Response {
    let w = match wh::get(State(st.clone()), s.caller.clone(), Path(id)).await {
        Ok(Json(w)) => to_value(w),
        Err(e) => return api_error(e),
    };
    let form = json!({
        "url": w["url"], "description": w["description"], "events": w["events"],
        "rate_limit": w["rate_limit"], "max_in_flight": w["max_in_flight"], "ordering": w["ordering"],
    });
    form_page(&st, &s, StatusCode::OK, Some(w), form, BTreeMap::new()).await
}

pub async fn edit(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let (rate_limit, max_in_flight) =
        match (number(&form, "rate_limit"), number(&form, "max_in_flight")) {
            (Ok(r), Ok(m)) => (r, m),
            (Err((f, m)), _) | (_, Err((f, m))) => {
                let errors = BTreeMap::from([(f, m)]);
                return edit_again(&st, &s, id, &form, StatusCode::UNPROCESSABLE_ENTITY, errors)
                    .await;
            }
        };
    let patch = wh::UpdateWebhook {
        url: Some(form.get("url").unwrap_or_default()),
        events: Some(form.all("events")),
        description: Some(form.get("description").unwrap_or_default()),
        rate_limit: Some(rate_limit),
        max_in_flight: Some(max_in_flight),
        ..Default::default()
    };
    match wh::update(
        State(st.clone()),
        s.caller.clone(),
        Path(id.clone()),
        JsonBody(patch),
    )
    .await
    {
        Ok(_) => redirect_done(&st, &s, &format!("/portal/webhooks/{id}"), "saved", ""),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            edit_again(&st, &s, id, &form, e.status, field_errors(&e)).await
        }
        Err(e) => api_error(e),
    }
}

/// The edit form again, with what was typed and the errors.
async fn edit_again(
    st: &Arc<AppState>,
    s: &Session,
    id: String,
    form: &Form,
    status: StatusCode,
    errors: BTreeMap<String, String>,
) -> Response {
    let w = match wh::get(State(st.clone()), s.caller.clone(), Path(id)).await {
        Ok(Json(w)) => to_value(w),
        Err(e) => return api_error(e),
    };
    let mut values = form_values(form);
    values["ordering"] = w["ordering"].clone();
    form_page(st, s, status, Some(w), values, errors).await
}

// ------------------------------------------------------------- deliveries

/// A query parameter, trimmed; `None` when absent or empty.
fn param(q: &HashMap<String, String>, k: &str) -> Option<String> {
    q.get(k)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// What the filter forms of the lists offer: the tenant's webhooks, the
/// catalog, and each webhook's URL by id.
struct Lists {
    webhooks: Vec<Value>,
    types: Vec<Value>,
    urls: HashMap<String, String>,
}

async fn lists(st: &Arc<AppState>, caller: &Caller) -> Result<Lists, ApiError> {
    let webhooks = all_webhooks(st, caller).await?;
    let types = catalog(st, caller).await?;
    let urls = webhooks
        .iter()
        .map(|w| {
            (
                w["id"].as_str().unwrap_or_default().to_owned(),
                w["url"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    Ok(Lists {
        webhooks,
        types,
        urls,
    })
}

/// The webhook choices of a filter form.
fn choices(webhooks: &[Value]) -> Vec<Value> {
    webhooks
        .iter()
        .map(|w| json!({"id": w["id"], "url": w["url"]}))
        .collect()
}

const STATUSES: [&str; 4] = ["pending", "succeeded", "failed", "dead"];

pub async fn deliveries(State(st): State<Arc<AppState>>, s: Session, Query(q): Params) -> Response {
    let get = |k: &str| param(&q, k);
    let filters = json!({
        "webhook": get("webhook"), "status": get("status"), "event_type": get("event_type"),
        "since": get("since"), "until": get("until"),
    });
    let Lists {
        webhooks,
        types,
        urls,
    } = match lists(&st, &s.caller).await {
        Ok(l) => l,
        Err(e) => return api_error(e),
    };
    let only = dv::WebhookFilter {
        webhook_id: get("webhook"),
    };
    let query = dv::ListQuery {
        status: get("status"),
        event_type: get("event_type"),
        since: get("since").map(|v| local_to_rfc3339(&v)),
        until: get("until").map(|v| local_to_rfc3339(&v)),
        cursor: get("cursor"),
        limit: Some(50),
    };
    let mut errors = BTreeMap::new();
    let (list, next) = match dv::list_all(
        State(st.clone()),
        s.caller.clone(),
        QueryParams(only),
        QueryParams(query),
    )
    .await
    {
        Ok(Json(p)) => {
            let next = p.next_cursor.map(|c| {
                let mut ser = url::form_urlencoded::Serializer::new(String::new());
                for k in ["webhook", "status", "event_type", "since", "until"] {
                    if let Some(v) = get(k) {
                        ser.append_pair(k, &v);
                    }
                }
                ser.append_pair("cursor", &c);
                format!("/portal/deliveries?{}", ser.finish())
            });
            let list: Vec<Value> = p
                .data
                .into_iter()
                .map(|d| {
                    let url = urls.get(&d.webhook_id).cloned().unwrap_or_default();
                    let mut v = to_value(d);
                    v["webhook_url"] = url.into();
                    v
                })
                .collect();
            (list, next)
        }
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            errors = field_errors(&e);
            (vec![], None)
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            errors.insert("webhook".into(), "no such webhook".into());
            (vec![], None)
        }
        Err(e) => return api_error(e),
    };
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let hooks = choices(&webhooks);
    page_status(
        &s,
        status,
        "deliveries.html",
        "deliveries",
        "Deliveries",
        json!({"deliveries": list, "filters": filters, "errors": errors, "webhooks": hooks,
               "event_types": types, "statuses": STATUSES, "next": next}),
    )
}

pub async fn delivery(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Params,
) -> Response {
    let webhook_id = q.get("webhook").cloned().unwrap_or_default();
    let w = match wh::get(
        State(st.clone()),
        s.caller.clone(),
        Path(webhook_id.clone()),
    )
    .await
    {
        Ok(Json(w)) => w,
        Err(e) => return api_error(e),
    };
    let d = match dv::get(
        State(st.clone()),
        s.caller.clone(),
        Path((webhook_id, id.clone())),
    )
    .await
    {
        Ok(Json(d)) => d,
        Err(e) => return api_error(e),
    };
    let payload_pretty = d
        .payload
        .as_ref()
        .and_then(|p| serde_json::to_string_pretty(p).ok())
        .unwrap_or_default();
    let mut headers = vec![
        json!({"name": "content-type", "value": "application/json"}),
        json!({"name": "webhook-id", "value": d.event_id}),
        json!({"name": "webhook-timestamp", "value": "the time of each attempt (Unix seconds)"}),
        json!({"name": "webhook-signature", "value": "v1,<base64 HMAC-SHA256> computed at each attempt with the webhook's signing secret(s)"}),
    ];
    headers.extend(
        w.headers
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v})),
    );
    page(
        &s,
        "delivery.html",
        "deliveries",
        &format!("Delivery {id}"),
        json!({"delivery": d, "webhook": w, "payload_pretty": payload_pretty,
               "headers_sent": headers, "flash": flash(&st, &s, &q)}),
    )
}

pub async fn resend(
    State(st): State<Arc<AppState>>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Params,
    form: Form,
) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let webhook_id = q.get("webhook").cloned().unwrap_or_default();
    match dv::resend(
        State(st),
        s.caller.clone(),
        Path((webhook_id.clone(), id.clone())),
    )
    .await
    {
        Ok(_) => {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("webhook", &webhook_id)
                .append_pair("done", "resent")
                .finish();
            Redirect::to(&format!("/portal/deliveries/{id}?{q}")).into_response()
        }
        Err(e) => api_error(e),
    }
}

// ----------------------------------------------------------- dead letters

pub async fn dead_letters(
    State(st): State<Arc<AppState>>,
    s: Session,
    Query(q): Params,
) -> Response {
    let get = |k: &str| param(&q, k);
    let Lists {
        webhooks,
        types,
        urls,
    } = match lists(&st, &s.caller).await {
        Ok(l) => l,
        Err(e) => return api_error(e),
    };
    let query = dl::ListQuery {
        endpoint_id: get("webhook"),
        event_type: get("event_type"),
        limit: Some(100),
        ..Default::default()
    };
    let report = match dl::list(State(st.clone()), s.caller.clone(), QueryParams(query)).await {
        Ok(Json(r)) => r,
        Err(e) => return api_error(e),
    };
    let list: Vec<Value> = report
        .data
        .into_iter()
        .map(|d| {
            let url = urls.get(&d.endpoint_id).cloned().unwrap_or_default();
            let mut v = to_value(d);
            v["webhook_url"] = url.into();
            v
        })
        .collect();
    let hooks = choices(&webhooks);
    // A fixed, server-chosen message: nothing from the query string is shown.
    let report = (q.get("done").map(String::as_str) == Some("replay_started")).then(|| {
        json!({"message": "Replay started: the dead letters that match are being sent again. Refresh to follow."})
    });
    page(
        &s,
        "dead_letters.html",
        "dead_letters",
        "Dead letters",
        json!({"dead_letters": list, "filters": {"webhook": get("webhook"), "event_type": get("event_type")},
               "webhooks": hooks, "event_types": types, "report": report}),
    )
}

pub async fn replay(State(st): State<Arc<AppState>>, s: Session, form: Form) -> Response {
    if let Some(r) = form.csrf_refused(&s) {
        return r;
    }
    let body = dl::ActionBody {
        delivery_id: form.get("delivery_id"),
        endpoint_id: form.get("webhook"),
        event_type: form.get("event_type"),
        ..Default::default()
    };
    match dl::replay(State(st), s.caller.clone(), JsonBody(body)).await {
        Ok(_) => {
            let mut ser = url::form_urlencoded::Serializer::new(String::new());
            ser.append_pair("done", "replay_started");
            for k in ["webhook", "event_type"] {
                if let Some(v) = form.get(k) {
                    ser.append_pair(k, &v);
                }
            }
            Redirect::to(&format!("/portal/dead-letters?{}", ser.finish())).into_response()
        }
        Err(e) => api_error(e),
    }
}

// ------------------------------------------------------------------ events

pub async fn events(State(st): State<Arc<AppState>>, s: Session) -> Response {
    match catalog(&st, &s.caller).await {
        Ok(mut types) => {
            // The catalog page shows each schema and example as JSON text.
            for t in &mut types {
                let pretty = |k: &str| serde_json::to_string_pretty(&t[k]).unwrap_or_default();
                let (schema, example) = (pretty("schema"), pretty("example"));
                t["schema_pretty"] = schema.into();
                t["example_pretty"] = example.into();
            }
            page(
                &s,
                "events.html",
                "events",
                "Event catalog",
                json!({"event_types": types}),
            )
        }
        Err(e) => api_error(e),
    }
}
