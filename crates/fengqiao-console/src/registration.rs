//! 登记: the registration form (`GET /register`, `POST /register`). The form holds every header
//! field `POST /api/cases` takes; the node runs the API's own checks (`Node::register`: ID
//! numbers, phones, jurisdiction, headcount, the text rule) and names the field it refuses,
//! which the page shows beside that field, in the person's language, with everything typed kept.
//! The console only turns the form's text into the request (a number, a date, a choice of a list)
//! and judges nothing else. "增加一行" works without JavaScript: the form is sent back and shown
//! again with one more petitioner row.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use fengqiao_case::deadlines::china_offset;
use fengqiao_case::input_bounds::TextKind;
use fengqiao_case::model::{
    Category, Channel, IdType, Location, MatterType, Ownership, Petitioner, RegisterCase,
};

use crate::CSRF_COOKIE;
use crate::backend::{BackendError, BackendErrorKind, ConsoleUser};
use crate::forms::parse_choice;
use crate::forms::{FormErrors, InputView, SelectView, Spec, input, select, spec};
use crate::pages::{
    ALL_CATEGORIES, Backend, cookie, failure_page, html, language, layout, signed_in,
    signed_in_form,
};
use crate::texts::{Texts, Ui, fill};
use crate::views::{Layout, case_href};

/// Petitioner rows a blank form shows.
pub const BLANK_PETITIONER_ROWS: usize = 3;
/// The most rows a form is shown with, whatever field names a request makes up; more people
/// than this come as a group, counted in the headcount with their representatives listed.
pub const MAX_PETITIONER_ROWS: usize = 50;

pub(crate) const ALL_CHANNELS: [Channel; 6] = [
    Channel::Visit,
    Channel::Letter,
    Channel::Online,
    Channel::Phone,
    Channel::LeaderMailbox,
    Channel::GridScreening,
];

pub(crate) const ALL_MATTER_TYPES: [MatterType; 3] = [
    MatterType::Appeal,
    MatterType::Suggestion,
    MatterType::Accusation,
];

pub(crate) const ALL_ID_TYPES: [IdType; 5] = [
    IdType::ResidentId,
    IdType::Passport,
    IdType::HkMacaoPermit,
    IdType::TaiwanPermit,
    IdType::Other,
];

/// One petitioner row as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PetitionerRow {
    pub name: String,
    pub id_type: String,
    pub id_number: String,
    pub phone: String,
    pub address: String,
    pub representative: bool,
}

impl PetitionerRow {
    fn is_blank(&self) -> bool {
        [&self.name, &self.id_number, &self.phone, &self.address]
            .iter()
            .all(|value| value.trim().is_empty())
            && !self.representative
    }
}

/// The form as typed: text, as the page shows it back. Enum fields hold API names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationForm {
    pub csrf: String,
    pub channel: String,
    pub category: String,
    pub matter_type: String,
    pub headcount: String,
    pub respondent: String,
    pub litigation_related: bool,
    pub summary: String,
    pub region_code: String,
    pub village: String,
    pub grid: String,
    pub grid_worker: String,
    pub leader: String,
    pub unit: String,
    pub officer: String,
    pub plan: String,
    pub target_date: String,
    /// 补录: when a paper record was really registered (China time, `2026-12-04T09:30`), and
    /// why it is entered late; both empty for a registration made now.
    pub registered_at: String,
    pub backdated_reason: String,
    pub petitioners: Vec<PetitionerRow>,
    /// "增加一行" was pressed: show the form again with one more row, register nothing.
    pub add_row: bool,
}

/// `petitioner_id_number_2` → (`id_number`, 2), for rows the page may show.
fn row_field(name: &str) -> Option<(&str, usize)> {
    let (field, index) = name.strip_prefix("petitioner_")?.rsplit_once('_')?;
    let index: usize = index.parse().ok()?;
    (index < MAX_PETITIONER_ROWS).then_some((field, index))
}

impl RegistrationForm {
    /// A blank form: a visit, an appeal, one person, located at the office itself.
    pub fn blank(region_code: &str) -> RegistrationForm {
        RegistrationForm {
            channel: "visit".to_owned(),
            matter_type: "appeal".to_owned(),
            headcount: "1".to_owned(),
            region_code: region_code.to_owned(),
            petitioners: vec![PetitionerRow::default(); BLANK_PETITIONER_ROWS],
            ..RegistrationForm::default()
        }
    }

    fn text_field(&mut self, name: &str) -> Option<&mut String> {
        Some(match name {
            "csrf" => &mut self.csrf,
            "channel" => &mut self.channel,
            "category" => &mut self.category,
            "matter_type" => &mut self.matter_type,
            "headcount" => &mut self.headcount,
            "respondent" => &mut self.respondent,
            "summary" => &mut self.summary,
            "region_code" => &mut self.region_code,
            "village" => &mut self.village,
            "grid" => &mut self.grid,
            "grid_worker" => &mut self.grid_worker,
            "leader" => &mut self.leader,
            "unit" => &mut self.unit,
            "officer" => &mut self.officer,
            "plan" => &mut self.plan,
            "target_date" => &mut self.target_date,
            "registered_at" => &mut self.registered_at,
            "backdated_reason" => &mut self.backdated_reason,
            _ => return None,
        })
    }

    /// The form from its fields as the browser sent them; unknown fields are ignored (a page
    /// of an older console), rows beyond [`MAX_PETITIONER_ROWS`] too.
    pub fn from_pairs(pairs: &[(String, String)]) -> RegistrationForm {
        let mut form = RegistrationForm::default();
        let mut rows = BLANK_PETITIONER_ROWS;
        for (name, value) in pairs {
            if let Some((field, index)) = row_field(name) {
                rows = rows.max(index + 1);
                if form.petitioners.len() <= index {
                    form.petitioners.resize(index + 1, PetitionerRow::default());
                }
                let row = &mut form.petitioners[index];
                match field {
                    "name" => row.name = value.clone(),
                    "id_type" => row.id_type = value.clone(),
                    "id_number" => row.id_number = value.clone(),
                    "phone" => row.phone = value.clone(),
                    "address" => row.address = value.clone(),
                    "representative" => row.representative = true,
                    _ => {}
                }
            } else if let Some(text) = form.text_field(name) {
                *text = value.clone();
            } else {
                match name.as_str() {
                    "rows" => {
                        let asked = value.trim().parse::<usize>().unwrap_or(0);
                        rows = rows.max(asked.min(MAX_PETITIONER_ROWS));
                    }
                    "litigation_related" => form.litigation_related = true,
                    "add_row" => form.add_row = true,
                    _ => {}
                }
            }
        }
        if form.add_row {
            rows = (rows + 1).min(MAX_PETITIONER_ROWS);
        }
        form.petitioners.resize(rows, PetitionerRow::default());
        form
    }

    /// The API's request from the form, and for each petitioner sent the form row it came
    /// from (blank rows are left out); or what could not be read, by field.
    pub fn to_request(&self, t: &Ui) -> Result<(RegisterCase, Vec<usize>), FormErrors> {
        let mut errors = FormErrors::default();
        let mut choice = |field: &str, value: &str| -> Option<String> {
            if value.is_empty() {
                errors.beside(field, t.not_a_choice.clone());
            }
            (!value.is_empty()).then(|| value.to_owned())
        };
        let channel = choice("channel", &self.channel);
        let category = choice("category", &self.category);
        let matter_type = choice("matter_type", &self.matter_type);
        let mut refused = Vec::new();
        let channel: Option<Channel> = channel.and_then(|name| parse_choice(&name, &mut refused));
        let category: Option<Category> =
            category.and_then(|name| parse_choice(&name, &mut refused));
        let matter_type: Option<MatterType> =
            matter_type.and_then(|name| parse_choice(&name, &mut refused));
        for (field, value) in [
            ("channel", &self.channel),
            ("category", &self.category),
            ("matter_type", &self.matter_type),
        ] {
            if refused.contains(value) {
                errors.beside(field, t.not_a_choice.clone());
            }
        }
        let headcount = self.headcount.trim().parse::<u32>().ok();
        if headcount.is_none() {
            errors.beside("headcount", t.not_a_number.clone());
        }
        let target_date = match self.target_date.trim() {
            "" => None,
            text => {
                let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
                if date.is_none() {
                    errors.beside("target_date", t.not_a_date.clone());
                }
                date
            }
        };
        let registered_at = match self.registered_at.trim() {
            "" => None,
            text => {
                let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
                    .ok()
                    .and_then(|local| china_offset().from_local_datetime(&local).single())
                    .map(|at| at.with_timezone(&Utc));
                if at.is_none() {
                    errors.beside("registered_at", t.not_a_time.clone());
                }
                at
            }
        };
        let mut petitioners = Vec::new();
        let mut rows = Vec::new();
        for (index, row) in self.petitioners.iter().enumerate() {
            if row.is_blank() {
                continue;
            }
            let mut refused = Vec::new();
            let id_type: IdType = parse_choice(&row.id_type, &mut refused).unwrap_or_default();
            if !refused.is_empty() {
                errors.beside(
                    &format!("petitioner_id_type_{index}"),
                    t.not_a_choice.clone(),
                );
            }
            petitioners.push(Petitioner {
                name: row.name.trim().to_owned(),
                id_number: row.id_number.trim().to_owned(),
                id_type,
                phone: row.phone.trim().to_owned(),
                address: row.address.trim().to_owned(),
                representative: row.representative,
            });
            rows.push(index);
        }
        let (Some(channel), Some(category), Some(matter_type), Some(headcount), true) =
            (channel, category, matter_type, headcount, errors.is_empty())
        else {
            return Err(errors);
        };
        let request = RegisterCase {
            number: None,
            registered_at,
            backdated_reason: Some(self.backdated_reason.trim().to_owned())
                .filter(|reason| !reason.is_empty()),
            channel,
            petitioners,
            headcount,
            respondent: self.respondent.trim().to_owned(),
            category,
            matter_type,
            litigation_related: self.litigation_related,
            summary: self.summary.trim().to_owned(),
            location: Location {
                region_code: self.region_code.trim().to_owned(),
                village: self.village.trim().to_owned(),
                grid: self.grid.trim().to_owned(),
                grid_worker: self.grid_worker.trim().to_owned(),
            },
            ownership: Ownership {
                leader: self.leader.trim().to_owned(),
                unit: self.unit.trim().to_owned(),
                officer: self.officer.trim().to_owned(),
                plan: self.plan.trim().to_owned(),
                target_date,
            },
        };
        Ok((request, rows))
    }
}

impl FormErrors {
    /// The node's refusal, beside the form field it names: `field` is the request's path
    /// (`petitioners.id_number`, `location.region_code`); a petitioner's refusal starts with
    /// which one (`petitioner 2: …`, counted among those sent), which `rows` maps back to the
    /// form's row. A refusal that names no field of the form goes above it.
    pub fn from_refusal(error: &BackendError, rows: &[usize], t: &Ui) -> FormErrors {
        let mut errors = FormErrors::default();
        let placed = error
            .field
            .as_deref()
            .and_then(|path| form_field(path, &error.message, rows));
        match placed {
            Some((field, why)) => {
                let label = label_of(t, &field);
                errors.beside(
                    &field,
                    fill(&t.field_refused, &[("field", &label), ("why", &why)]),
                );
            }
            None => errors.general.push(match &error.field {
                Some(path) => format!("{path}: {}", error.message),
                None => error.message.clone(),
            }),
        }
        errors
    }
}

/// The form field a request path names, and the refusal's words about it.
fn form_field(path: &str, why: &str, rows: &[usize]) -> Option<(String, String)> {
    if let Some(part) = path
        .strip_prefix("petitioners")
        .map(|rest| rest.trim_start_matches('.'))
    {
        // `petitioner 2: …` or `petitioner 2 has no name`.
        let rest = why.strip_prefix("petitioner ")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let position: usize = digits.parse().ok()?;
        let row = *rows.get(position.checked_sub(1)?)?;
        let rest = &rest[digits.len()..];
        let why = rest.strip_prefix(": ").unwrap_or(rest.trim_start());
        let part = if part.is_empty() { "name" } else { part };
        return Some((format!("petitioner_{part}_{row}"), why.to_owned()));
    }
    let field = match path {
        "location.region_code" | "region_code" => "region_code",
        "location.village" => "village",
        "location.grid" => "grid",
        "location.grid_worker" => "grid_worker",
        "ownership.leader" => "leader",
        "ownership.unit" => "unit",
        "ownership.officer" => "officer",
        "ownership.plan" => "plan",
        "ownership.target_date" => "target_date",
        "headcount" | "respondent" | "summary" | "channel" | "category" | "matter_type"
        | "registered_at" | "backdated_reason" => path,
        _ => return None,
    };
    Some((field.to_owned(), why.to_owned()))
}

/// The word for a form field, for the message beside it.
fn label_of(t: &Ui, field: &str) -> String {
    let field = row_field(field).map_or(field, |(part, _)| part);
    match field {
        "name" => &t.petitioner_name,
        "id_type" => &t.id_type,
        "id_number" => &t.id_number,
        "phone" => &t.phone,
        "address" => &t.address,
        "channel" => &t.channel,
        "category" => &t.category,
        "matter_type" => &t.matter_type,
        "headcount" => &t.headcount,
        "respondent" => &t.respondent,
        "summary" => &t.summary,
        "region_code" => &t.region_code,
        "village" => &t.village,
        "grid" => &t.grid,
        "grid_worker" => &t.grid_worker,
        "leader" => &t.leader,
        "unit" => &t.responsible_unit,
        "officer" => &t.case_officer,
        "plan" => &t.plan,
        "target_date" => &t.target_date,
        "registered_at" => &t.backdated_at,
        "backdated_reason" => &t.backdated_reason,
        other => other,
    }
    .to_owned()
}

#[derive(Debug, Clone)]
pub struct PetitionerRowView {
    pub number: usize,
    pub fields: Vec<InputView>,
    pub id_type: SelectView,
    pub representative_name: String,
    pub representative: bool,
}

#[derive(Debug, Template)]
#[template(path = "register.html")]
pub struct RegistrationPage {
    pub layout: Layout,
    pub errors: Vec<String>,
    pub selects: Vec<SelectView>,
    pub matter: Vec<InputView>,
    pub litigation_related: bool,
    pub location: Vec<InputView>,
    pub ownership: Vec<InputView>,
    pub backdating: Vec<InputView>,
    pub rows: Vec<PetitionerRowView>,
    pub row_count: usize,
}

/// The page for `form`, with `errors` beside their fields.
pub fn registration_page(
    layout: Layout,
    texts: &Texts,
    form: &RegistrationForm,
    errors: &FormErrors,
) -> RegistrationPage {
    use TextKind::{Identifier, Line, Name, Summary, Text};
    let t = &texts.ui;
    let required = |spec: Spec| Spec {
        required: true,
        ..spec
    };
    let headcount = Spec {
        input_type: "number",
        ..required(spec("headcount", &t.headcount, Identifier))
    };
    let region_code = Spec {
        pattern: "[0-9]{6}([0-9]{3}){0,2}",
        ..required(spec("region_code", &t.region_code, Identifier))
    };
    let target_date = Spec {
        input_type: "date",
        ..spec("target_date", &t.target_date, Identifier)
    };
    let selects = vec![
        select(
            ("channel", &t.channel),
            &texts.channel,
            &ALL_CHANNELS,
            &form.channel,
            errors,
        ),
        select(
            ("category", &t.category),
            &texts.category,
            &ALL_CATEGORIES,
            &form.category,
            errors,
        ),
        select(
            ("matter_type", &t.matter_type),
            &texts.matter_type,
            &ALL_MATTER_TYPES,
            &form.matter_type,
            errors,
        ),
    ];
    let rows = form
        .petitioners
        .iter()
        .enumerate()
        .map(|(index, row)| {
            let name = |field: &str| format!("petitioner_{field}_{index}");
            let mut person = spec(&name("name"), &t.petitioner_name, Name);
            // One petitioner at least: the first row's name.
            person.required = index == 0;
            let phone = Spec {
                input_type: "tel",
                ..spec(&name("phone"), &t.phone, Identifier)
            };
            PetitionerRowView {
                number: index + 1,
                fields: vec![
                    input(person, &row.name, errors),
                    input(
                        spec(&name("id_number"), &t.id_number, Identifier),
                        &row.id_number,
                        errors,
                    ),
                    input(phone, &row.phone, errors),
                    input(
                        spec(&name("address"), &t.address, Line),
                        &row.address,
                        errors,
                    ),
                ],
                id_type: SelectView {
                    required: false,
                    ..select(
                        (&name("id_type"), &t.id_type),
                        &texts.id_type,
                        &ALL_ID_TYPES,
                        &row.id_type,
                        errors,
                    )
                },
                representative_name: name("representative"),
                representative: row.representative,
            }
        })
        .collect::<Vec<_>>();
    RegistrationPage {
        layout,
        errors: errors.general.clone(),
        selects,
        matter: vec![
            input(headcount, &form.headcount, errors),
            input(
                spec("respondent", &t.respondent, Line),
                &form.respondent,
                errors,
            ),
            input(
                required(spec("summary", &t.summary, Summary)),
                &form.summary,
                errors,
            ),
        ],
        litigation_related: form.litigation_related,
        location: vec![
            input(region_code, &form.region_code, errors),
            input(spec("village", &t.village, Line), &form.village, errors),
            input(spec("grid", &t.grid, Line), &form.grid, errors),
            input(
                spec("grid_worker", &t.grid_worker, Name),
                &form.grid_worker,
                errors,
            ),
        ],
        ownership: vec![
            input(spec("leader", &t.leader, Name), &form.leader, errors),
            input(spec("unit", &t.responsible_unit, Line), &form.unit, errors),
            input(
                spec("officer", &t.case_officer, Name),
                &form.officer,
                errors,
            ),
            input(spec("plan", &t.plan, Text), &form.plan, errors),
            input(target_date, &form.target_date, errors),
        ],
        backdating: vec![
            input(
                Spec {
                    input_type: "datetime-local",
                    ..spec("registered_at", &t.backdated_at, Identifier)
                },
                &form.registered_at,
                errors,
            ),
            input(
                spec("backdated_reason", &t.backdated_reason, Line),
                &form.backdated_reason,
                errors,
            ),
        ],
        row_count: rows.len(),
        rows,
    }
}

async fn show_form(
    backend: &Backend,
    headers: &HeaderMap,
    user: &ConsoleUser,
    form: &RegistrationForm,
    errors: &FormErrors,
    status: StatusCode,
) -> Response {
    let language = language(headers);
    let texts = Texts::of(language);
    let csrf = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let title = texts.ui.register.clone();
    let layout = layout(backend, language, Some(user), csrf, "register", title).await;
    html(status, &registration_page(layout, texts, form, errors))
}

/// `GET /register`: a blank form.
pub async fn registration_form(State(backend): State<Backend>, headers: HeaderMap) -> Response {
    let user = match signed_in(&backend, &headers).await {
        Ok(user) => user,
        Err(response) => return response,
    };
    let form = RegistrationForm::blank(&backend.office().region_code);
    show_form(
        &backend,
        &headers,
        &user,
        &form,
        &FormErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// The CSRF token among the form's fields, as `from_pairs` reads it: the last `csrf` sent.
// `&Vec`: the form is read as a `Vec`, and `signed_in_form` hands it back as read.
#[allow(clippy::ptr_arg)]
fn csrf_field(pairs: &Vec<(String, String)>) -> &str {
    pairs
        .iter()
        .rev()
        .find(|(name, _)| name == "csrf")
        .map_or("", |(_, value)| value.as_str())
}

/// `POST /register`: with the session's CSRF token, register the case as the API does and go
/// to its page; a refusal shows the form again as typed, the refusal beside its field.
pub async fn register(
    State(backend): State<Backend>,
    headers: HeaderMap,
    body: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let (user, pairs) = match signed_in_form(&backend, &headers, body, csrf_field).await {
        Ok(signed_in) => signed_in,
        Err(response) => return response,
    };
    let form = RegistrationForm::from_pairs(&pairs);
    if form.add_row {
        let errors = FormErrors::default();
        return show_form(&backend, &headers, &user, &form, &errors, StatusCode::OK).await;
    }
    let t = &Texts::of(language(&headers)).ui;
    let (mut errors, status) = match form.to_request(t) {
        Err(errors) => (errors, StatusCode::BAD_REQUEST),
        Ok((request, rows)) => match backend.register(&user, request).await {
            Ok(view) => return Redirect::to(&case_href(&view.header.number)).into_response(),
            Err(error) => {
                let status = match error.kind {
                    BackendErrorKind::InvalidInput | BackendErrorKind::Refused => {
                        StatusCode::BAD_REQUEST
                    }
                    BackendErrorKind::Forbidden => StatusCode::FORBIDDEN,
                    _ => return failure_page(&backend, &headers, Some(&user), &error).await,
                };
                (FormErrors::from_refusal(&error, &rows, t), status)
            }
        },
    };
    errors.general.insert(0, t.registration_refused.clone());
    show_form(&backend, &headers, &user, &form, &errors, status).await
}
