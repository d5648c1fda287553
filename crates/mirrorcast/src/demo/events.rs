//! The simulated retail events of the "Loosehanger Jeans" scenario: orders, cancellations of
//! earlier orders, door badge-ins, stock movements, new customers and sensor readings, as
//! string keys and JSON values. Pure and seeded: the same seed gives the same events.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// The kinds of event, with the scenario's topic names and intervals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Order,
    Cancellation,
    Door,
    Stock,
    Customer,
    Sensor,
}

impl Kind {
    /// Every kind produced on a timer (cancellations follow orders).
    pub const TIMED: [Kind; 5] = [
        Kind::Order,
        Kind::Door,
        Kind::Stock,
        Kind::Customer,
        Kind::Sensor,
    ];
    pub const ALL: [Kind; 6] = [
        Kind::Order,
        Kind::Cancellation,
        Kind::Door,
        Kind::Stock,
        Kind::Customer,
        Kind::Sensor,
    ];

    pub fn default_topic(self) -> &'static str {
        match self {
            Kind::Order => "LH.ORDERS",
            Kind::Cancellation => "LH.CANCELLATIONS",
            Kind::Door => "LH.DOORS",
            Kind::Stock => "LH.STOCK",
            Kind::Customer => "LH.CUSTOMERS",
            Kind::Sensor => "LH.SENSORS",
        }
    }

    /// The scenario's interval between two events of this kind.
    pub fn default_interval(self) -> Duration {
        match self {
            Kind::Stock => Duration::from_secs(60),
            _ => Duration::from_secs(10),
        }
    }

    /// The name used on the command line (`--interval orders=5`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Order => "orders",
            Kind::Cancellation => "cancellations",
            Kind::Door => "doors",
            Kind::Stock => "stock",
            Kind::Customer => "customers",
            Kind::Sensor => "sensors",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One event, ready to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: Kind,
    pub key: String,
    pub value: serde_json::Value,
}

const SIZES: [&str; 7] = ["XXS", "XS", "S", "M", "L", "XL", "XXL"];
const MATERIALS: [&str; 6] = [
    "Classic",
    "Retro",
    "Stonewashed",
    "Acid-washed",
    "Black",
    "Indigo",
];
const STYLES: [&str; 7] = [
    "Skinny", "Bootcut", "Flare", "Jogger", "Cargo", "Straight", "Relaxed",
];
const WAREHOUSES: [&str; 5] = ["Antwerp", "Rotterdam", "Dusseldorf", "Brussels", "Hamburg"];
const FIRST_NAMES: [&str; 10] = [
    "Emma", "Lucas", "Sofia", "Noah", "Mila", "Liam", "Julia", "Finn", "Lena", "Milan",
];
const LAST_NAMES: [&str; 10] = [
    "Peeters", "de Vries", "Muller", "Janssens", "Schmidt", "Jansen", "Dubois", "Fischer", "Maes",
    "Bakker",
];
const CANCEL_REASONS: [&str; 4] = ["CHANGEDMIND", "BADFIT", "DELIVERYDELAY", "FOUNDCHEAPER"];

/// The timestamp format of the scenario's events.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Makes events; cancellations are made from orders it made earlier.
pub struct EventGenerator {
    rng: StdRng,
    region: String,
}

impl EventGenerator {
    pub fn new(seed: u64, region: &str) -> Self {
        EventGenerator {
            rng: StdRng::seed_from_u64(seed),
            region: region.to_string(),
        }
    }

    fn uuid(&mut self) -> String {
        let n: u128 = self.rng.random();
        let hex = format!("{n:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        )
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    /// "XL Stonewashed Bootcut Jeans"
    pub fn product(&mut self) -> String {
        let (size, material, style) =
            (self.pick(&SIZES), self.pick(&MATERIALS), self.pick(&STYLES));
        format!("{size} {material} {style} Jeans")
    }

    fn price(&mut self) -> f64 {
        // 14.99 to 59.99, in whole euros plus .99 as shops price.
        f64::from(self.rng.random_range(14..=59)) + 0.99
    }

    fn customer_name(&mut self) -> String {
        format!("{} {}", self.pick(&FIRST_NAMES), self.pick(&LAST_NAMES))
    }

    /// An event of a timed kind (not a cancellation, which needs its order).
    pub fn timed(&mut self, kind: Kind, at: DateTime<Utc>) -> Event {
        let time = format_timestamp(at);
        match kind {
            Kind::Order | Kind::Cancellation => {
                let id = self.uuid();
                let value = json!({
                    "id": id,
                    "customer": self.customer_name(),
                    "customerid": self.uuid(),
                    "description": self.product(),
                    "price": self.price(),
                    "quantity": self.rng.random_range(1..=15),
                    "region": self.region,
                    "warehouse": self.pick(&WAREHOUSES),
                    "ordertime": time,
                });
                Event {
                    kind: Kind::Order,
                    key: id,
                    value,
                }
            }
            Kind::Door => {
                let id = self.uuid();
                let warehouse = self.pick(&WAREHOUSES);
                let value = json!({
                    "recordid": id,
                    "door": format!("{}-door-{}", warehouse.to_lowercase(), self.rng.random_range(1..=6)),
                    "employee": self.customer_name(),
                    "warehouse": warehouse,
                    "region": self.region,
                    "badgetime": time,
                });
                Event {
                    kind,
                    key: id,
                    value,
                }
            }
            Kind::Stock => {
                let id = self.uuid();
                let value = json!({
                    "movementid": id,
                    "description": self.product(),
                    "quantity": self.rng.random_range(-250..=500),
                    "warehouse": self.pick(&WAREHOUSES),
                    "region": self.region,
                    "updatetime": time,
                });
                Event {
                    kind,
                    key: id,
                    value,
                }
            }
            Kind::Customer => {
                let id = self.uuid();
                let name = self.customer_name();
                let email = format!("{}@example.com", name.to_lowercase().replace(' ', "."));
                let value = json!({
                    "customerid": id,
                    "customername": name,
                    "emails": [email],
                    "region": self.region,
                    "registered": time,
                });
                Event {
                    kind,
                    key: id,
                    value,
                }
            }
            Kind::Sensor => {
                let warehouse = self.pick(&WAREHOUSES);
                let sensor = format!(
                    "{}-{}-{}",
                    &warehouse[..3].to_uppercase(),
                    self.rng.random_range(1..=4),
                    self.rng.random_range(1..=20)
                );
                let value = json!({
                    "sensorid": sensor,
                    "warehouse": warehouse,
                    "temperature": f64::from(self.rng.random_range(150..=260)) / 10.0,
                    "humidity": self.rng.random_range(30..=70),
                    "region": self.region,
                    "readingtime": time,
                });
                Event {
                    kind,
                    key: sensor,
                    value,
                }
            }
        }
    }

    /// Whether the order just made will be cancelled (one in `one_in`).
    pub fn will_cancel(&mut self, one_in: u32) -> bool {
        one_in > 0 && self.rng.random_range(0..one_in) == 0
    }

    /// The cancellation of an earlier order.
    pub fn cancellation(&mut self, order: &Event, at: DateTime<Utc>) -> Event {
        let id = self.uuid();
        let value = json!({
            "id": id,
            "orderid": order.key,
            "reason": self.pick(&CANCEL_REASONS),
            "region": self.region,
            "canceltime": format_timestamp(at),
        });
        Event {
            kind: Kind::Cancellation,
            key: id,
            value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 15, 30, 0).unwrap() + chrono::Duration::milliseconds(7)
    }

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let mut a = EventGenerator::new(42, "EU");
        let mut b = EventGenerator::new(42, "EU");
        for kind in Kind::TIMED {
            assert_eq!(a.timed(kind, at()), b.timed(kind, at()));
        }
        assert_ne!(
            EventGenerator::new(1, "EU").timed(Kind::Order, at()),
            a.timed(Kind::Order, at())
        );
    }

    #[test]
    fn orders_look_like_the_scenarios() {
        let mut generator = EventGenerator::new(7, "EU");
        for _ in 0..200 {
            let order = generator.timed(Kind::Order, at());
            let v = &order.value;
            assert_eq!(v["id"].as_str(), Some(order.key.as_str()));
            assert_eq!(v["ordertime"], "2026-11-24 15:30:00.007");
            assert_eq!(v["region"], "EU");
            let price = v["price"].as_f64().unwrap();
            assert!((14.99..=59.99).contains(&price), "{price}");
            let quantity = v["quantity"].as_i64().unwrap();
            assert!((1..=15).contains(&quantity));
            let description = v["description"].as_str().unwrap();
            assert!(description.ends_with(" Jeans"), "{description}");
            assert_eq!(
                description.split(' ').count(),
                4,
                "size material style Jeans: {description}"
            );
            assert!(WAREHOUSES.contains(&v["warehouse"].as_str().unwrap()));
        }
    }

    #[test]
    fn a_cancellation_names_its_order() {
        let mut generator = EventGenerator::new(3, "EU");
        let order = generator.timed(Kind::Order, at());
        let cancel = generator.cancellation(&order, at());
        assert_eq!(cancel.kind, Kind::Cancellation);
        assert_eq!(cancel.value["orderid"].as_str(), Some(order.key.as_str()));
    }

    #[test]
    fn every_kind_has_a_string_key_and_a_timestamp() {
        let mut generator = EventGenerator::new(9, "EU");
        for kind in Kind::TIMED {
            let event = generator.timed(kind, at());
            assert_eq!(event.kind, kind);
            assert!(!event.key.is_empty());
            let text = event.value.to_string();
            assert!(text.contains("2026-11-24 15:30:00.007"), "{text}");
        }
    }
}
