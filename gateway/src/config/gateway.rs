//! The `[gateway]` table.

use super::model::{GatewayConfig, LogFormat};
use super::reader::{Reader, Tbl};

impl Reader<'_> {
    pub(super) fn gateway(&mut self, top: &mut Tbl) -> Option<GatewayConfig> {
        let Some(mut t) = self.table(top, "gateway") else {
            self.missing(top, "gateway", "add a [gateway] table with id, site and unit");
            return None;
        };
        let id = self.string(&mut t, "id", Some("a unique id for this gateway, e.g. id = \"gw-icu-3\""));
        if let Some((id, span)) = &id {
            if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                self.err(
                    span.clone(),
                    "gateway.id",
                    format!("{id:?} contains characters that are not allowed in an MQTT topic level"),
                    Some("use letters, digits, '-' and '_'".into()),
                );
            }
        }
        let site = self.string(&mut t, "site", Some("the hospital or site code, e.g. site = \"HOSP\""));
        let unit = self.string(&mut t, "unit", Some("the nursing unit, e.g. unit = \"ICU\""));
        let timezone = self.timezone(&mut t, "timezone");
        let nomenclature = self.path(&mut t, "nomenclature", None);
        if let Some((p, span)) = &nomenclature {
            if let Err(e) = crate::nomenclature_file::load(p) {
                self.err(span.clone(), "gateway.nomenclature", format!("{}: {e}", p.display()), None);
            }
        }
        let nomenclature = nomenclature.map(|(p, _)| p);
        let log_format = self.choice(&mut t, "log_format", &[("human", LogFormat::Human), ("json", LogFormat::Json)], LogFormat::Human);
        let eui64 = self.string(&mut t, "eui64", None).and_then(|(v, span)| match v.parse() {
            Ok(e) => Some(e),
            Err(_) => {
                self.err(
                    span,
                    "gateway.eui64",
                    format!("{v:?} is not an EUI-64"),
                    Some("16 hex digits, e.g. eui64 = \"0012345678ABCDEF\"".into()),
                );
                None
            }
        });
        self.finish(t, &["id", "site", "unit", "timezone", "nomenclature", "log_format", "eui64"]);
        Some(GatewayConfig { id: id?.0, site: site?.0, unit: unit?.0, timezone, nomenclature, log_format, eui64 })
    }
}
