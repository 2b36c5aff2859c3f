//! The feature transform: [`FeatureSpec`] (what to compute) and [`Encoder`] (the fitted,
//! serialisable transform).

use std::collections::BTreeMap;

use chrono::{Datelike, Timelike};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use shopstream_schema::catalog::{PRODUCTS, is_viewed_together, product_by_name};
use shopstream_schema::{DeviceType, Gender, Referrer, Session};

/// The 50 US states plus the District of Columbia: the public, data-independent state
/// vocabulary of [`StateVocabulary::UsStates`].
pub const US_STATES: [&str; 51] = [
    "Alabama",
    "Alaska",
    "Arizona",
    "Arkansas",
    "California",
    "Colorado",
    "Connecticut",
    "Delaware",
    "District of Columbia",
    "Florida",
    "Georgia",
    "Hawaii",
    "Idaho",
    "Illinois",
    "Indiana",
    "Iowa",
    "Kansas",
    "Kentucky",
    "Louisiana",
    "Maine",
    "Maryland",
    "Massachusetts",
    "Michigan",
    "Minnesota",
    "Mississippi",
    "Missouri",
    "Montana",
    "Nebraska",
    "Nevada",
    "New Hampshire",
    "New Jersey",
    "New Mexico",
    "New York",
    "North Carolina",
    "North Dakota",
    "Ohio",
    "Oklahoma",
    "Oregon",
    "Pennsylvania",
    "Rhode Island",
    "South Carolina",
    "South Dakota",
    "Tennessee",
    "Texas",
    "Utah",
    "Vermont",
    "Virginia",
    "Washington",
    "West Virginia",
    "Wisconsin",
    "Wyoming",
];

/// The label of a session: `1.0` when `purchaseMade`, else `0.0`.
pub fn label(session: &Session) -> f64 {
    if session.purchase_made { 1.0 } else { 0.0 }
}

/// How a categorical field (gender, state, exit page, referrer, device, part of day) becomes
/// numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoricalEncoding {
    /// One 0/1 column per level, named `field=level`; a value outside the vocabulary is all
    /// zeros. Suits every model (trees, MLP, linear).
    #[default]
    OneHot,
    /// One column holding the level's index `0..levels`; a value outside the vocabulary gets
    /// `levels` (one past the last). Fewer columns; suits trees only.
    Ordinal,
}

/// Where the vocabulary of `locationData.state` comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateVocabulary {
    /// The public list [`US_STATES`]. Data-independent: fitting reads nothing, so it costs no
    /// privacy budget. The default, and the right choice for differentially private models.
    UsStates,
    /// The states seen at least `min_count` times in the training sessions, sorted by name.
    /// Data-dependent: the vocabulary itself reveals which states occur, so do not use it for a
    /// model released under differential privacy.
    Fitted {
        /// Minimum number of training sessions for a state to get its own level.
        min_count: usize,
    },
}

/// Public (data-independent) value ranges of the unbounded numeric features, used as the
/// domain by mechanisms that must not look at data to pick split thresholds (the DP random
/// forest). Values outside are still encoded unchanged; the range is only a domain hint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericRanges {
    /// `sessionDuration` in seconds.
    pub session_duration: (f64, f64),
    /// `clicks`.
    pub clicks: (f64, f64),
    /// `pageViews`.
    pub page_views: (f64, f64),
    /// Sum of `timeSpentonEachPage`, seconds.
    pub time_on_pages: (f64, f64),
    /// Longest single entry of `timeSpentonEachPage`, seconds.
    pub max_time_on_page: (f64, f64),
    /// Sum of the viewed products' prices.
    pub basket_total: (f64, f64),
}

impl Default for NumericRanges {
    fn default() -> Self {
        let all_prices: f64 = PRODUCTS.iter().map(|p| f64::from(p.price)).sum();
        NumericRanges {
            session_duration: (0.0, 1200.0),
            clicks: (0.0, 80.0),
            page_views: (1.0, 10.0),
            time_on_pages: (0.0, 1200.0),
            max_time_on_page: (0.0, 600.0),
            basket_total: (0.0, all_prices),
        }
    }
}

/// What the transform computes. `FeatureSpec::default()` is the documented production
/// transform: one-hot categoricals, the public US-state vocabulary, and the behaviour extras.
///
/// Columns, in order (one-hot fields expand to one column per level):
///
/// | name | meaning |
/// | --- | --- |
/// | `hour` | hour of `sessionTimestamp`, 0-23 |
/// | `day_of_week` | 0 = Monday ... 6 = Sunday |
/// | `weekend` | 1 on Saturday and Sunday |
/// | `month` | 1-12 |
/// | `iso_week` | ISO 8601 week number, 1-53 |
/// | `part_of_day=*` | night (0-5 h), morning (6-11), afternoon (12-17), evening (18-23) |
/// | `gender=*` | `Male`, `Female`, `Other` |
/// | `state=*` | `locationData.state`, vocabulary per [`StateVocabulary`] |
/// | `session_duration` | seconds |
/// | `clicks` | clicks |
/// | `exit_page=*` | the ten product names |
/// | `referrer=*` | `Google`, ..., `unknown` |
/// | `device=*` | `mobile`, `desktop`, `tablet`, `unknown` |
/// | `viewed_<product>` | 1 when the product's page was viewed (10 columns) |
/// | `page_views`, `time_on_pages`, `max_time_on_page`, `basket_total`, `viewed_together` | behaviour extras (only with `behaviour_extras`) |
///
/// The first fourteen groups are the original notebook's feature set; the extras are further
/// non-label-revealing fields of the record (pages viewed, time on the pages, the viewed
/// products' prices, whether all viewed pages belong to one viewed-together set of the catalogue,
/// as [`shopstream_schema::catalog::is_viewed_together`] defines it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Encoding of the categorical fields.
    pub categorical: CategoricalEncoding,
    /// Vocabulary of the state field.
    pub states: StateVocabulary,
    /// Whether to append the behaviour extras.
    pub behaviour_extras: bool,
    /// Public ranges of the unbounded numeric features.
    pub ranges: NumericRanges,
}

impl Default for FeatureSpec {
    fn default() -> Self {
        FeatureSpec {
            categorical: CategoricalEncoding::OneHot,
            states: StateVocabulary::UsStates,
            behaviour_extras: true,
            ranges: NumericRanges::default(),
        }
    }
}

impl FeatureSpec {
    /// The original notebook's feature set only (no behaviour extras).
    pub fn original() -> Self {
        FeatureSpec { behaviour_extras: false, ..FeatureSpec::default() }
    }

    /// Fits the transform on training sessions. Reads the sessions only for
    /// [`StateVocabulary::Fitted`]; otherwise the result does not depend on them.
    pub fn fit(&self, training: &[Session]) -> Encoder {
        let states: Vec<String> = match &self.states {
            StateVocabulary::UsStates => US_STATES.iter().map(|s| s.to_string()).collect(),
            StateVocabulary::Fitted { min_count } => {
                let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                for s in training {
                    *counts.entry(s.location_data.state.as_str()).or_default() += 1;
                }
                counts
                    .into_iter()
                    .filter(|&(_, c)| c >= (*min_count).max(1))
                    .map(|(s, _)| s.to_string())
                    .collect()
            }
        };
        Encoder::new(self.clone(), states)
    }
}

/// The part of the day a session started in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartOfDay {
    /// 0:00-5:59.
    Night,
    /// 6:00-11:59.
    Morning,
    /// 12:00-17:59.
    Afternoon,
    /// 18:00-23:59.
    Evening,
}

impl PartOfDay {
    /// Every value, in column order.
    pub const ALL: [PartOfDay; 4] =
        [PartOfDay::Night, PartOfDay::Morning, PartOfDay::Afternoon, PartOfDay::Evening];

    /// The part of the day of an hour `0..24`.
    pub fn of_hour(hour: u32) -> PartOfDay {
        match hour {
            0..=5 => PartOfDay::Night,
            6..=11 => PartOfDay::Morning,
            12..=17 => PartOfDay::Afternoon,
            _ => PartOfDay::Evening,
        }
    }

    /// The level name used in column names.
    pub fn as_str(self) -> &'static str {
        match self {
            PartOfDay::Night => "night",
            PartOfDay::Morning => "morning",
            PartOfDay::Afternoon => "afternoon",
            PartOfDay::Evening => "evening",
        }
    }
}

/// What kind of value a column holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// A count or measurement.
    Numeric,
    /// A 0/1 flag (including one-hot columns).
    Binary,
    /// An ordinal code `0..levels` of a categorical field (`levels` means "not in vocabulary").
    Ordinal {
        /// Number of vocabulary levels.
        levels: usize,
    },
}

/// The source fields, in column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Hour,
    DayOfWeek,
    Weekend,
    Month,
    IsoWeek,
    PartOfDay,
    Gender,
    State,
    SessionDuration,
    Clicks,
    ExitPage,
    Referrer,
    Device,
    Viewed,
    PageViews,
    TimeOnPages,
    MaxTimeOnPage,
    BasketTotal,
    ViewedTogether,
}

const ORIGINAL_FIELDS: [Field; 14] = [
    Field::Hour,
    Field::DayOfWeek,
    Field::Weekend,
    Field::Month,
    Field::IsoWeek,
    Field::PartOfDay,
    Field::Gender,
    Field::State,
    Field::SessionDuration,
    Field::Clicks,
    Field::ExitPage,
    Field::Referrer,
    Field::Device,
    Field::Viewed,
];

const EXTRA_FIELDS: [Field; 5] = [
    Field::PageViews,
    Field::TimeOnPages,
    Field::MaxTimeOnPage,
    Field::BasketTotal,
    Field::ViewedTogether,
];

/// The fitted transform. Serialise it with the model; build it only with [`FeatureSpec::fit`].
///
/// It reads only these session fields: `sessionTimestamp`, `gender`, `locationData.state`,
/// `sessionDuration`, `clicks`, `exitPage`, `referrer`, `deviceInformation.deviceType`,
/// `browsingPattern`, and with the extras `pageViews`, `timeSpentonEachPage`, `productPrices`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoder {
    spec: FeatureSpec,
    states: Vec<String>,
    names: Vec<String>,
    kinds: Vec<FeatureKind>,
    ranges: Vec<(f64, f64)>,
}

impl Encoder {
    fn new(spec: FeatureSpec, states: Vec<String>) -> Encoder {
        let mut enc =
            Encoder { spec, states, names: Vec::new(), kinds: Vec::new(), ranges: Vec::new() };
        let mut names = Vec::new();
        let mut kinds = Vec::new();
        let mut ranges = Vec::new();
        for field in enc.fields() {
            match enc.levels(field) {
                Some(levels) => match enc.spec.categorical {
                    CategoricalEncoding::OneHot => {
                        for level in &levels {
                            names.push(format!("{}={level}", field_name(field)));
                            kinds.push(FeatureKind::Binary);
                            ranges.push((0.0, 1.0));
                        }
                    }
                    CategoricalEncoding::Ordinal => {
                        names.push(field_name(field).to_string());
                        kinds.push(FeatureKind::Ordinal { levels: levels.len() });
                        ranges.push((0.0, levels.len() as f64));
                    }
                },
                None if field == Field::Viewed => {
                    for p in &PRODUCTS {
                        names.push(format!("viewed_{}", p.name.replace(' ', "_")));
                        kinds.push(FeatureKind::Binary);
                        ranges.push((0.0, 1.0));
                    }
                }
                None => {
                    names.push(field_name(field).to_string());
                    let range = enc.numeric_range(field);
                    kinds.push(if range == (0.0, 1.0) {
                        FeatureKind::Binary
                    } else {
                        FeatureKind::Numeric
                    });
                    ranges.push(range);
                }
            }
        }
        enc.names = names;
        enc.kinds = kinds;
        enc.ranges = ranges;
        enc
    }

    fn fields(&self) -> Vec<Field> {
        let mut fields = ORIGINAL_FIELDS.to_vec();
        if self.spec.behaviour_extras {
            fields.extend(EXTRA_FIELDS);
        }
        fields
    }

    /// Vocabulary of a categorical field, `None` for the others.
    fn levels(&self, field: Field) -> Option<Vec<String>> {
        let own = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
        match field {
            Field::PartOfDay => own(&PartOfDay::ALL.map(PartOfDay::as_str)),
            Field::Gender => own(&Gender::ALL.iter().map(|g| g.as_str()).collect::<Vec<_>>()),
            Field::State => Some(self.states.clone()),
            Field::ExitPage => own(&PRODUCTS.map(|p| p.name)),
            Field::Referrer => own(&Referrer::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
            Field::Device => own(&DeviceType::ALL.iter().map(|d| d.as_str()).collect::<Vec<_>>()),
            _ => None,
        }
    }

    fn numeric_range(&self, field: Field) -> (f64, f64) {
        let r = &self.spec.ranges;
        match field {
            Field::Hour => (0.0, 23.0),
            Field::DayOfWeek => (0.0, 6.0),
            Field::Month => (1.0, 12.0),
            Field::IsoWeek => (1.0, 53.0),
            Field::SessionDuration => r.session_duration,
            Field::Clicks => r.clicks,
            Field::PageViews => r.page_views,
            Field::TimeOnPages => r.time_on_pages,
            Field::MaxTimeOnPage => r.max_time_on_page,
            Field::BasketTotal => r.basket_total,
            _ => (0.0, 1.0),
        }
    }

    /// Level index of a categorical field for a session, `None` when outside the vocabulary.
    fn level_of(&self, field: Field, s: &Session) -> Option<usize> {
        match field {
            Field::PartOfDay => {
                let pod = PartOfDay::of_hour(s.session_timestamp.hour());
                PartOfDay::ALL.iter().position(|&p| p == pod)
            }
            Field::Gender => Gender::ALL.iter().position(|&g| g == s.gender),
            Field::State => self.states.iter().position(|st| *st == s.location_data.state),
            Field::ExitPage => {
                product_by_name(&s.exit_page).map(|p| usize::from(p.id).saturating_sub(1))
            }
            Field::Referrer => Referrer::ALL.iter().position(|&r| r == s.referrer),
            Field::Device => {
                DeviceType::ALL.iter().position(|&d| d == s.device_information.device_type)
            }
            _ => None,
        }
    }

    fn numeric_value(field: Field, s: &Session) -> f64 {
        let ts = s.session_timestamp;
        let b = |v: bool| if v { 1.0 } else { 0.0 };
        match field {
            Field::Hour => f64::from(ts.hour()),
            Field::DayOfWeek => f64::from(ts.weekday().num_days_from_monday()),
            Field::Weekend => b(ts.weekday().num_days_from_monday() >= 5),
            Field::Month => f64::from(ts.month()),
            Field::IsoWeek => f64::from(ts.iso_week().week()),
            Field::SessionDuration => f64::from(s.session_duration),
            Field::Clicks => f64::from(s.clicks),
            Field::PageViews => f64::from(s.page_views),
            Field::TimeOnPages => s.time_spent_on_each_page.iter().map(|&t| f64::from(t)).sum(),
            Field::MaxTimeOnPage => {
                s.time_spent_on_each_page.iter().map(|&t| f64::from(t)).fold(0.0, f64::max)
            }
            Field::BasketTotal => s.product_prices.iter().map(|&p| f64::from(p)).sum(),
            Field::ViewedTogether => b(is_viewed_together(&s.browsing_pattern)),
            _ => 0.0,
        }
    }

    /// The spec this encoder was fitted from.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// The state vocabulary in use.
    pub fn states(&self) -> &[String] {
        &self.states
    }

    /// Column names, in column order (see [`FeatureSpec`]).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.names.len()
    }

    /// Kind of each column.
    pub fn kinds(&self) -> &[FeatureKind] {
        &self.kinds
    }

    /// Public, data-independent `(min, max)` domain of each column: fixed by the calendar, the
    /// vocabularies, or [`NumericRanges`]. Never computed from data.
    pub fn public_ranges(&self) -> &[(f64, f64)] {
        &self.ranges
    }

    /// Writes the row of one session into `out` (which must have [`Encoder::width`] entries).
    ///
    /// # Panics
    /// If `out.len() != self.width()` (a programming error, not an input error).
    pub fn transform_into(&self, session: &Session, out: &mut [f64]) {
        assert_eq!(out.len(), self.width(), "output row has the wrong width");
        let mut i = 0;
        for field in self.fields() {
            if let Some(levels) = self.levels(field) {
                let level = self.level_of(field, session);
                match self.spec.categorical {
                    CategoricalEncoding::OneHot => {
                        for (j, slot) in out[i..i + levels.len()].iter_mut().enumerate() {
                            *slot = if level == Some(j) { 1.0 } else { 0.0 };
                        }
                        i += levels.len();
                    }
                    CategoricalEncoding::Ordinal => {
                        out[i] = level.unwrap_or(levels.len()) as f64;
                        i += 1;
                    }
                }
            } else if field == Field::Viewed {
                let flags = &mut out[i..i + PRODUCTS.len()];
                flags.fill(0.0);
                for &id in &session.browsing_pattern {
                    if let Some(slot) =
                        usize::from(id).checked_sub(1).and_then(|k| flags.get_mut(k))
                    {
                        *slot = 1.0;
                    }
                }
                i += PRODUCTS.len();
            } else {
                out[i] = Self::numeric_value(field, session);
                i += 1;
            }
        }
    }

    /// The row of one session (serving path).
    pub fn transform_one(&self, session: &Session) -> Vec<f64> {
        let mut row = vec![0.0; self.width()];
        self.transform_into(session, &mut row);
        row
    }

    /// The feature matrix of many sessions, one row each.
    pub fn transform(&self, sessions: &[Session]) -> Array2<f64> {
        let mut x = Array2::zeros((sessions.len(), self.width()));
        for (mut row, s) in x.rows_mut().into_iter().zip(sessions) {
            // A freshly allocated standard-layout matrix has contiguous rows.
            if let Some(slice) = row.as_slice_mut() {
                self.transform_into(s, slice);
            }
        }
        x
    }
}

fn field_name(field: Field) -> &'static str {
    match field {
        Field::Hour => "hour",
        Field::DayOfWeek => "day_of_week",
        Field::Weekend => "weekend",
        Field::Month => "month",
        Field::IsoWeek => "iso_week",
        Field::PartOfDay => "part_of_day",
        Field::Gender => "gender",
        Field::State => "state",
        Field::SessionDuration => "session_duration",
        Field::Clicks => "clicks",
        Field::ExitPage => "exit_page",
        Field::Referrer => "referrer",
        Field::Device => "device",
        Field::Viewed => "viewed",
        Field::PageViews => "page_views",
        Field::TimeOnPages => "time_on_pages",
        Field::MaxTimeOnPage => "max_time_on_page",
        Field::BasketTotal => "basket_total",
        Field::ViewedTogether => "viewed_together",
    }
}
