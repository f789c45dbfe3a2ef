//! `dvcqg`: the National Public Service Portal (Cổng Dịch vụ công quốc gia). A `dossier.sync`
//! record becomes the portal's dossier sync call (`DongBoHoSoMC`), a `dossier.progress` record its
//! progress call (`CapNhatTienDoHoSoMC`). The adapter logs in with username and password for a
//! session, reuses it, and logs in again when the portal rejects it. The portal answers HTTP 200
//! with an `error_code` in the body: 0 is success; others are retryable or final by configuration.
//! docs/dvcqg-mapping.md describes the mapping field by field.

use mekong_core::cloudevents;
use mekong_kafka::Received;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::attempt::{
    Attempt, MAX_ANSWER_BYTES, classify_error, classify_status, excerpt, read_answer,
};
use crate::secret::Secret;

/// Fields of a dossier the portal takes (DongBoHoSoMC); others are not sent.
const DOSSIER_FIELDS: [&str; 23] = [
    "MaHoSo",
    "MaTTHC",
    "TenTTHC",
    "MaLinhVuc",
    "TenLinhVuc",
    "ChuHoSo",
    "LoaiDoiTuong",
    "MaDoiTuong",
    "Email",
    "SoDienThoai",
    "TrichYeuHoSo",
    "NgayTiepNhan",
    "NgayHenTra",
    "TrangThaiHoSo",
    "NgayTra",
    "HinhThuc",
    "NgayKetThucXuLy",
    "DonViXuLy",
    "GhiChu",
    "TaiLieuNop",
    "DanhSachLePhi",
    "DanhSachHoSoBoSung",
    "DanhSachGiayToKetQua",
];

/// Fields of a progress step the portal takes (CapNhatTienDoHoSoMC).
const PROGRESS_FIELDS: [&str; 9] = [
    "MaHoSo",
    "NguoiXuLy",
    "ChucDanh",
    "ThoiDiemXuLy",
    "PhongBanXuLy",
    "NoiDungXuLy",
    "TrangThai",
    "NgayBatDau",
    "NgayKetThucTheoQuyDinh",
];

/// Date fields: sent as `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh.
const DATE_FIELDS: [&str; 7] = [
    "NgayTiepNhan",
    "NgayHenTra",
    "NgayTra",
    "NgayKetThucXuLy",
    "ThoiDiemXuLy",
    "NgayBatDau",
    "NgayKetThucTheoQuyDinh",
];

/// Code fields: the portal's clients send them as strings.
const CODE_FIELDS: [&str; 4] = ["LoaiDoiTuong", "TrangThaiHoSo", "HinhThuc", "TrangThai"];

pub struct Portal {
    pub(crate) client: reqwest::Client,
    pub(crate) endpoint: String,
    pub(crate) login_endpoint: String,
    pub(crate) username: Secret,
    pub(crate) password: Secret,
    pub(crate) unit_code: String,
    pub(crate) retryable_codes: Vec<String>,
    pub(crate) session_codes: Vec<String>,
    /// The session in use; `None` until logged in, or after the portal rejected it.
    pub(crate) session: Mutex<Option<String>>,
}

/// What the portal said to one call.
enum Answer {
    Ok,
    SessionRejected(String),
    Failed(Attempt),
}

impl Portal {
    pub async fn deliver(&self, record: &Received, record_type: &str) -> Attempt {
        let body = match request_body(record, record_type, &self.unit_code) {
            Ok(body) => body,
            Err(reason) => {
                return Attempt::Reject {
                    status: None,
                    reason,
                };
            }
        };
        // At most one fresh login per attempt: a portal that keeps refusing new sessions is a
        // failure to retry later, not a loop.
        let mut logged_in_now = false;
        loop {
            let session = match self.session(&mut logged_in_now).await {
                Ok(session) => session,
                Err(failure) => return failure,
            };
            let mut call = body.clone();
            call["session"] = Value::String(session.clone());
            match self.call(&call, traceparent(record)).await {
                Answer::Ok => return Attempt::Delivered { status: 200 },
                Answer::Failed(attempt) => return attempt,
                Answer::SessionRejected(reason) => {
                    self.forget(&session).await;
                    if logged_in_now {
                        return Attempt::Retry {
                            status: Some(200),
                            reason: format!("the portal rejected a fresh session: {reason}"),
                            after: None,
                        };
                    }
                    info!(%reason, "the portal rejected the session; logging in again");
                }
            }
        }
    }

    /// The current session, logging in if there is none.
    async fn session(&self, logged_in_now: &mut bool) -> Result<String, Attempt> {
        let mut current = self.session.lock().await;
        if let Some(session) = current.as_ref() {
            return Ok(session.clone());
        }
        let session = self.login().await?;
        *logged_in_now = true;
        *current = Some(session.clone());
        Ok(session)
    }

    /// Forgets a rejected session (unless another task already replaced it).
    async fn forget(&self, rejected: &str) {
        let mut current = self.session.lock().await;
        if current.as_deref() == Some(rejected) {
            *current = None;
        }
    }

    async fn login(&self) -> Result<String, Attempt> {
        let credentials = json!({
            "username": self.username.expose(),
            "password": self.password.expose(),
        });
        let response = self
            .client
            .post(&self.login_endpoint)
            .json(&credentials)
            .send()
            .await
            .map_err(|e| classify_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let (text, cut) = read_answer(response).await;
        if !status.is_success() {
            return Err(login_failure(classify_status(status, &headers, &text)));
        }
        if cut {
            return Err(Attempt::Retry {
                status: Some(status.as_u16()),
                reason: format!(
                    "the portal's login answer is longer than {MAX_ANSWER_BYTES} bytes"
                ),
                after: None,
            });
        }
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match (
            error_code(&answer),
            answer.get("session").and_then(Value::as_str),
        ) {
            (Some(code), Some(session)) if is_success(&code) && !session.is_empty() => {
                info!("logged in to the national portal");
                Ok(session.to_owned())
            }
            (code, _) => {
                // Wrong credentials are fixed by an operator, not by time; still retried, so the
                // records wait in order (and reach the dead-letter topic if it takes too long).
                warn!(error_code = ?code, "login to the national portal refused");
                Err(Attempt::Retry {
                    status: Some(status.as_u16()),
                    reason: format!(
                        "login refused (error_code {}): {}",
                        code.unwrap_or_else(|| "missing".into()),
                        message(&answer).unwrap_or_else(|| excerpt(&text))
                    ),
                    after: None,
                })
            }
        }
    }

    async fn call(&self, body: &Value, traceparent: Option<&str>) -> Answer {
        let mut request = self.client.post(&self.endpoint).json(body);
        // The record's trace continues into the portal call.
        if let Some(tp) = traceparent {
            request = request.header(cloudevents::TRACEPARENT, tp);
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Answer::Failed(classify_error(&e)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let (text, cut) = read_answer(response).await;
        if cut && status.is_success() {
            return Answer::Failed(Attempt::Retry {
                status: Some(status.as_u16()),
                reason: format!("the portal's answer is longer than {MAX_ANSWER_BYTES} bytes"),
                after: None,
            });
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Answer::SessionRejected(format!("HTTP 401: {}", excerpt(&text)));
        }
        if !status.is_success() {
            return Answer::Failed(classify_status(status, &headers, &text));
        }
        let answer: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => {
                return Answer::Failed(Attempt::Retry {
                    status: Some(status.as_u16()),
                    reason: format!("the portal's answer is not JSON: {}", excerpt(&text)),
                    after: None,
                });
            }
        };
        let Some(code) = error_code(&answer) else {
            return Answer::Failed(Attempt::Retry {
                status: Some(status.as_u16()),
                reason: format!("the portal's answer has no error_code: {}", excerpt(&text)),
                after: None,
            });
        };
        if is_success(&code) {
            return Answer::Ok;
        }
        let reason = format!(
            "error_code {code}: {}",
            message(&answer).unwrap_or_else(|| excerpt(&text))
        );
        if self.session_codes.iter().any(|c| same_code(c, &code)) {
            Answer::SessionRejected(reason)
        } else if self.retryable_codes.iter().any(|c| same_code(c, &code)) {
            Answer::Failed(Attempt::Retry {
                status: Some(status.as_u16()),
                reason,
                after: None,
            })
        } else {
            Answer::Failed(Attempt::Reject {
                status: Some(status.as_u16()),
                reason,
            })
        }
    }
}

fn login_failure(attempt: Attempt) -> Attempt {
    match attempt {
        Attempt::Reject { status, reason } | Attempt::Retry { status, reason, .. } => {
            Attempt::Retry {
                status,
                reason: format!("login failed: {reason}"),
                after: None,
            }
        }
        delivered => delivered,
    }
}

/// `error_code` as text, whether the portal sent a number or a string.
fn error_code(answer: &Value) -> Option<String> {
    match answer.get("error_code")? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.trim().to_owned()),
        _ => None,
    }
}

fn message(answer: &Value) -> Option<String> {
    ["message", "error_message", "msg"]
        .iter()
        .find_map(|k| answer.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
}

/// 0, "0" and "00" are success.
fn is_success(code: &str) -> bool {
    code.parse::<i64>() == Ok(0)
}

fn same_code(a: &str, b: &str) -> bool {
    match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.trim() == b.trim(),
    }
}

/// The portal call for a record, without the session.
pub fn request_body(
    record: &Received,
    record_type: &str,
    unit_code: &str,
) -> Result<Value, String> {
    let payload: Value = serde_json::from_slice(&record.payload)
        .map_err(|e| format!("the record is not JSON: {e}"))?;
    let Value::Object(payload) = payload else {
        return Err("the record is not a JSON object".into());
    };
    let (service, fields): (&str, &[&str]) = match record_type {
        "dossier.sync" => ("DongBoHoSoMC", &DOSSIER_FIELDS),
        "dossier.progress" => ("CapNhatTienDoHoSoMC", &PROGRESS_FIELDS),
        other => {
            return Err(format!(
                "the dvcqg adapter delivers dossier.sync and dossier.progress records, not `{other}`"
            ));
        }
    };
    let mut data = Map::new();
    for field in fields {
        if let Some(value) = payload.get(*field) {
            data.insert((*field).to_owned(), portal_value(field, value)?);
        }
    }
    let mut body = json!({
        "madonvi": unit_code,
        "service": service,
    });
    if service == "DongBoHoSoMC" {
        body["isUpdating"] = Value::Bool(is_updating(record));
    }
    body["data"] = Value::Array(vec![Value::Object(data)]);
    Ok(body)
}

fn traceparent(record: &Received) -> Option<&str> {
    record
        .headers
        .iter()
        .find(|(name, _)| name == cloudevents::TRACEPARENT)
        .and_then(|(_, value)| std::str::from_utf8(value).ok())
}

/// Whether the publisher marked the record as an update of a dossier the portal already has: the
/// CloudEvents attribute `isupdating` (`true` or `1`).
fn is_updating(record: &Received) -> bool {
    record.headers.iter().any(|(name, value)| {
        name.strip_prefix(cloudevents::ATTRIBUTE_PREFIX) == Some("isupdating")
            && matches!(value.as_slice(), b"true" | b"1" | b"True")
    })
}

fn portal_value(field: &str, value: &Value) -> Result<Value, String> {
    if DATE_FIELDS.contains(&field)
        && let Value::String(text) = value
    {
        return portal_date(text).map(Value::String).ok_or_else(|| {
            format!("`{field}`: `{text}` is neither yyyyMMddHHmmss nor an RFC 3339 time")
        });
    }
    if CODE_FIELDS.contains(&field)
        && let Value::Number(n) = value
    {
        return Ok(Value::String(n.to_string()));
    }
    Ok(value.clone())
}

/// A time as the portal writes it: `yyyyMMddHHmmss` in Asia/Ho_Chi_Minh. Already in that form:
/// kept; an RFC 3339 time (with `Z` or an offset): converted.
pub fn portal_date(text: &str) -> Option<String> {
    let text = text.trim();
    if text.len() == 14 && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(text.to_owned());
    }
    mekong_core::times::portal_text(mekong_core::times::rfc3339_ms(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(payload: &str, headers: &[(&str, &str)]) -> Received {
        Received {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: b"k".to_vec(),
            payload: payload.as_bytes().to_vec().into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn dates_become_ho_chi_minh_yyyymmddhhmmss() {
        assert_eq!(portal_date("20261128083000").unwrap(), "20261128083000");
        assert_eq!(
            portal_date("2026-11-28T01:30:00Z").unwrap(),
            "20261128083000"
        );
        assert_eq!(
            portal_date("2026-11-28T08:30:00+07:00").unwrap(),
            "20261128083000"
        );
        assert_eq!(
            portal_date("2026-11-27T20:30:00-05:00").unwrap(),
            "20261128083000"
        );
        assert_eq!(
            portal_date("2026-11-28T20:00:00.250Z").unwrap(),
            "20261129030000"
        );
        assert_eq!(portal_date("28/11/2026"), None);
    }

    #[test]
    fn a_dossier_becomes_the_sync_call_with_only_the_portal_fields() {
        let record = received(
            r#"{"MaHoSo":"H29-1","LoaiDoiTuong":1,"NgayTiepNhan":"2026-11-28T01:30:00Z","TrangThaiHoSo":2,"NoiBo":"internal note","DanhSachLePhi":[{"SoTien":50000}]}"#,
            &[("ce_isupdating", "true")],
        );
        let body = request_body(&record, "dossier.sync", "000.00.01.H29").unwrap();
        assert_eq!(
            body,
            json!({
                "madonvi": "000.00.01.H29",
                "service": "DongBoHoSoMC",
                "isUpdating": true,
                "data": [{"MaHoSo": "H29-1", "LoaiDoiTuong": "1", "NgayTiepNhan": "20261128083000", "TrangThaiHoSo": "2", "DanhSachLePhi": [{"SoTien": 50000}]}]
            })
        );
        let progress = received(
            r#"{"MaHoSo":"H29-1","TrangThai":4,"ThoiDiemXuLy":"20261128143000"}"#,
            &[],
        );
        let body = request_body(&progress, "dossier.progress", "u").unwrap();
        assert_eq!(body["service"], "CapNhatTienDoHoSoMC");
        assert!(body.get("isUpdating").is_none());
        assert_eq!(body["data"][0]["TrangThai"], "4");

        assert!(
            request_body(&progress, "payment.completed", "u")
                .unwrap_err()
                .contains("not `payment.completed`")
        );
        let bad_date = received(r#"{"MaHoSo":"x","NgayTiepNhan":"hôm qua"}"#, &[]);
        assert!(
            request_body(&bad_date, "dossier.sync", "u")
                .unwrap_err()
                .contains("NgayTiepNhan")
        );
    }

    #[test]
    fn error_codes_compare_as_numbers_when_they_are() {
        assert!(is_success("0") && is_success("00") && !is_success("1"));
        assert!(same_code("05", "5") && !same_code("E1", "E2") && same_code("E1", " E1"));
        assert_eq!(error_code(&json!({"error_code": 0})).as_deref(), Some("0"));
        assert_eq!(
            error_code(&json!({"error_code": "-1"})).as_deref(),
            Some("-1")
        );
    }
}
