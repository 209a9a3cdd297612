//! The MQTT topic contract (docs/mqtt.md). Versioned by the prefix's last level (`medgw/v1`).
//!
//! ```text
//! {prefix}/{gateway}/status                     retained  online/offline (Last Will)
//! {prefix}/{gateway}/events                               gateway events
//! {prefix}/{gateway}/{bed}/{device}/obs                   observations (one per message)
//! {prefix}/{gateway}/{bed}/{device}/device      retained  FHIR Device resource
//! {prefix}/{gateway}/{bed}/{device}/events                device events (connect, silent, gaps, ...)
//! {prefix}/{gateway}/{bed}/{device}/alarm                 alarm lifecycle events (start/update/end)
//! {prefix}/{gateway}/{bed}/{device}/alarms/active retained active-alarm summary (heartbeat)
//! {prefix}/{gateway}/{bed}/{device}/wave                  waveform segments (with `[waves]`)
//! ```

use medgw_protocols::observation::DeviceContext;

/// Makes a configured name safe as one topic level: `/`, `+`, `#`, NUL and whitespace become
/// `_`, so a bed called "12/A" cannot create a new level or a wildcard.
pub fn level(name: &str) -> String {
    let s: String = name.chars().map(|c| if matches!(c, '/' | '+' | '#' | '\0') || c.is_whitespace() { '_' } else { c }).collect();
    if s.is_empty() {
        "_".to_string()
    } else {
        s
    }
}

#[derive(Debug, Clone)]
pub struct Topics {
    prefix: String,
    gateway: String,
}

impl Topics {
    pub fn new(prefix: &str, gateway: &str) -> Topics {
        Topics { prefix: prefix.to_string(), gateway: level(gateway) }
    }

    pub fn status(&self) -> String {
        format!("{}/{}/status", self.prefix, self.gateway)
    }

    pub fn gateway_events(&self) -> String {
        format!("{}/{}/events", self.prefix, self.gateway)
    }

    fn device_base(&self, ctx: &DeviceContext) -> String {
        format!("{}/{}/{}/{}", self.prefix, self.gateway, level(&ctx.location.bed), level(&ctx.name))
    }

    pub fn observations(&self, ctx: &DeviceContext) -> String {
        format!("{}/obs", self.device_base(ctx))
    }

    pub fn device(&self, ctx: &DeviceContext) -> String {
        format!("{}/device", self.device_base(ctx))
    }

    pub fn device_events(&self, ctx: &DeviceContext) -> String {
        format!("{}/events", self.device_base(ctx))
    }

    /// Alarm lifecycle events, in the sink's format (docs/alarms.md).
    pub fn alarm(&self, ctx: &DeviceContext) -> String {
        format!("{}/alarm", self.device_base(ctx))
    }

    /// The retained summary of the device's active alarms (canonical JSON).
    pub fn alarm_summary(&self, ctx: &DeviceContext) -> String {
        format!("{}/alarms/active", self.device_base(ctx))
    }

    /// Whether `topic` carries alarm events (their content type is the sink's format's).
    pub fn is_alarm(topic: &str) -> bool {
        topic.ends_with("/alarm")
    }

    /// Waveform segments (with `[waves]`, docs/waveforms.md).
    pub fn waves(&self, ctx: &DeviceContext) -> String {
        format!("{}/wave", self.device_base(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_cannot_escape_or_wildcard() {
        assert_eq!(level("BED4"), "BED4");
        assert_eq!(level("12/A"), "12_A");
        assert_eq!(level("a+b#c d"), "a_b_c_d");
        assert_eq!(level(""), "_");
        let mut ctx = DeviceContext { name: "spo2".into(), ..Default::default() };
        ctx.location.bed = "ICU/4".into();
        let t = Topics::new("medgw/v1", "gw-1");
        assert_eq!(t.observations(&ctx), "medgw/v1/gw-1/ICU_4/spo2/obs");
        assert_eq!(t.status(), "medgw/v1/gw-1/status");
        assert_eq!(t.alarm(&ctx), "medgw/v1/gw-1/ICU_4/spo2/alarm");
        assert_eq!(t.alarm_summary(&ctx), "medgw/v1/gw-1/ICU_4/spo2/alarms/active");
        assert!(Topics::is_alarm(&t.alarm(&ctx)) && !Topics::is_alarm(&t.alarm_summary(&ctx)));
        assert_eq!(t.waves(&ctx), "medgw/v1/gw-1/ICU_4/spo2/wave");
    }
}
