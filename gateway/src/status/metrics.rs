//! Prometheus text exposition (format 0.0.4) of the gateway's counters.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::pipeline::Running;
use crate::sink::mqtt::LATENCY_BUCKETS_MS;
use crate::source::DeviceState;

/// Escapes a label value (backslash, double quote, newline).
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub async fn render(r: &Running) -> String {
    let mut o = String::with_capacity(4096);
    let gw = label(&r.config.gateway.id);

    family(&mut o, "medgw_observations_decoded_total", "counter", "Observations decoded and accepted into the buffer, per device.");
    for d in &r.devices {
        let _ = writeln!(
            o,
            "medgw_observations_decoded_total{{gateway=\"{gw}\",device=\"{}\",protocol=\"{}\"}} {}",
            label(&d.name),
            label(&d.protocol),
            d.observations.load(Ordering::Relaxed)
        );
    }
    family(&mut o, "medgw_observations_published_total", "counter", "Observations the broker acknowledged, per device.");
    let delivered = r.sink.delivered_by_device.lock().map(|m| m.clone()).unwrap_or_default();
    for d in &r.devices {
        let _ = writeln!(
            o,
            "medgw_observations_published_total{{gateway=\"{gw}\",device=\"{}\",protocol=\"{}\"}} {}",
            label(&d.name),
            label(&d.protocol),
            delivered.get(&d.name).copied().unwrap_or(0)
        );
    }
    family(&mut o, "medgw_decode_errors_total", "counter", "Frames rejected by the decoder, per device and reason.");
    for d in &r.devices {
        if let Ok(m) = d.rejected_by_reason.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    o,
                    "medgw_decode_errors_total{{gateway=\"{gw}\",device=\"{}\",protocol=\"{}\",reason=\"{reason}\"}} {n}",
                    label(&d.name),
                    label(&d.protocol)
                );
            }
        }
    }
    family(&mut o, "medgw_sequence_gaps_total", "counter", "Sequence gaps reported by devices (readings lost before the gateway).");
    for d in &r.devices {
        let _ =
            writeln!(o, "medgw_sequence_gaps_total{{gateway=\"{gw}\",device=\"{}\"}} {}", label(&d.name), d.gaps.load(Ordering::Relaxed));
    }
    family(&mut o, "medgw_device_up", "gauge", "1 when the device's port is open and data flows, 0 when silent or disconnected.");
    for d in &r.devices {
        let up = u8::from(d.state() == DeviceState::Connected);
        let _ = writeln!(
            o,
            "medgw_device_up{{gateway=\"{gw}\",device=\"{}\",protocol=\"{}\",bed=\"{}\"}} {up}",
            label(&d.name),
            label(&d.protocol),
            label(&d.bed)
        );
    }
    family(
        &mut o,
        "medgw_device_session_up",
        "gauge",
        "1 when the device's protocol session (IntelliVue association) is up, with its state; only protocols with a session.",
    );
    for d in &r.devices {
        let Some(session) = d.session() else { continue };
        let up = u8::from(matches!(session, "associated" | "listening"));
        let _ = writeln!(o, "medgw_device_session_up{{gateway=\"{gw}\",device=\"{}\",session=\"{session}\"}} {up}", label(&d.name));
    }
    family(&mut o, "medgw_device_reconnects_total", "counter", "Port reopenings after a disconnection.");
    for d in &r.devices {
        let _ = writeln!(
            o,
            "medgw_device_reconnects_total{{gateway=\"{gw}\",device=\"{}\"}} {}",
            label(&d.name),
            d.reconnects.load(Ordering::Relaxed)
        );
    }
    family(&mut o, "medgw_device_alarms_active", "gauge", "Alarms and technical alerts active now, per device and kind.");
    for d in &r.devices {
        let active = d.alarms.active();
        for kind in ["physiological", "technical", "advisory"] {
            let n = active.iter().filter(|a| super::kind_name(a.kind) == kind).count();
            let _ = writeln!(o, "medgw_device_alarms_active{{gateway=\"{gw}\",device=\"{}\",kind=\"{kind}\"}} {n}", label(&d.name));
        }
    }
    family(&mut o, "medgw_alarm_events_total", "counter", "Alarm lifecycle events handed to the sink.");
    for d in &r.devices {
        let _ = writeln!(
            o,
            "medgw_alarm_events_total{{gateway=\"{gw}\",device=\"{}\"}} {}",
            label(&d.name),
            d.alarms.sent.load(Ordering::Relaxed)
        );
    }
    family(&mut o, "medgw_alarms_dropped_total", "counter", "Alarm lifecycle events dropped: the sink's queue was full.");
    for d in &r.devices {
        let _ = writeln!(
            o,
            "medgw_alarms_dropped_total{{gateway=\"{gw}\",device=\"{}\"}} {}",
            label(&d.name),
            d.alarms.dropped.load(Ordering::Relaxed)
        );
    }
    mllp_alarms(&mut o, &gw, &r.mllp_alarms);

    let s = &r.sink;
    family(&mut o, "medgw_mqtt_connected", "gauge", "1 when connected to the MQTT broker.");
    let _ = writeln!(o, "medgw_mqtt_connected{{gateway=\"{gw}\"}} {}", u8::from(s.connected.load(Ordering::Relaxed)));
    family(&mut o, "medgw_mqtt_reconnects_total", "counter", "Connections to the broker after the first.");
    let _ = writeln!(o, "medgw_mqtt_reconnects_total{{gateway=\"{gw}\"}} {}", s.reconnects.load(Ordering::Relaxed));
    family(&mut o, "medgw_mqtt_published_total", "counter", "Observation publishes sent (including re-sends).");
    let _ = writeln!(o, "medgw_mqtt_published_total{{gateway=\"{gw}\"}} {}", s.published.load(Ordering::Relaxed));
    family(&mut o, "medgw_mqtt_refused_total", "counter", "Publishes the broker refused with an MQTT 5 reason code (kept and retried).");
    let _ = writeln!(o, "medgw_mqtt_refused_total{{gateway=\"{gw}\"}} {}", s.refused.load(Ordering::Relaxed));
    family(&mut o, "medgw_events_dropped_total", "counter", "Events dropped while the broker was unreachable for long.");
    let _ = writeln!(o, "medgw_events_dropped_total{{gateway=\"{gw}\"}} {}", s.events_dropped.load(Ordering::Relaxed));
    family(&mut o, "medgw_waves_published_total", "counter", "Wave segments written (QoS 0) or acknowledged (QoS 1).");
    let _ = writeln!(o, "medgw_waves_published_total{{gateway=\"{gw}\"}} {}", s.waves_published.load(Ordering::Relaxed));
    family(
        &mut o,
        "medgw_waves_dropped_total",
        "counter",
        "Wave segments dropped because the wave queue was full (waves are not buffered).",
    );
    let _ = writeln!(o, "medgw_waves_dropped_total{{gateway=\"{gw}\"}} {}", s.waves_dropped.load(Ordering::Relaxed));
    family(&mut o, "medgw_wave_bytes_total", "counter", "Bytes of wave segment payloads written to the broker.");
    let _ = writeln!(o, "medgw_wave_bytes_total{{gateway=\"{gw}\"}} {}", s.wave_bytes.load(Ordering::Relaxed));

    family(&mut o, "medgw_publish_latency_seconds", "histogram", "From receipt of the device's bytes to the broker's acknowledgement.");
    let mut cumulative = 0u64;
    for (i, le) in LATENCY_BUCKETS_MS.iter().enumerate() {
        cumulative += s.latency_buckets[i].load(Ordering::Relaxed);
        let _ = writeln!(o, "medgw_publish_latency_seconds_bucket{{gateway=\"{gw}\",le=\"{}\"}} {cumulative}", *le as f64 / 1000.0);
    }
    cumulative += s.latency_buckets[LATENCY_BUCKETS_MS.len()].load(Ordering::Relaxed);
    let _ = writeln!(o, "medgw_publish_latency_seconds_bucket{{gateway=\"{gw}\",le=\"+Inf\"}} {cumulative}");
    let _ =
        writeln!(o, "medgw_publish_latency_seconds_sum{{gateway=\"{gw}\"}} {}", s.latency_sum_ms.load(Ordering::Relaxed) as f64 / 1000.0);
    let _ = writeln!(o, "medgw_publish_latency_seconds_count{{gateway=\"{gw}\"}} {cumulative}");

    if let Some(adt) = &r.adt {
        let a = super::adt_report(adt);
        family(
            &mut o,
            "medgw_adt_unmapped_messages_total",
            "counter",
            "ADT messages naming a location that is not one of this gateway's beds.",
        );
        let _ = writeln!(o, "medgw_adt_unmapped_messages_total{{gateway=\"{gw}\"}} {}", a.unmapped_messages);
        family(&mut o, "medgw_adt_unmapped_locations", "gauge", "Distinct unmapped ADT locations seen (at most 256 are told apart).");
        let _ = writeln!(o, "medgw_adt_unmapped_locations{{gateway=\"{gw}\"}} {}", a.unmapped_locations);
        family(&mut o, "medgw_adt_beds_associated", "gauge", "Beds with a patient associated by the ADT feed now.");
        let _ = writeln!(o, "medgw_adt_beds_associated{{gateway=\"{gw}\"}} {}", a.beds_associated);
    }

    if let Ok(b) = r.buffer.stats().await {
        family(&mut o, "medgw_buffer_depth", "gauge", "Observations accepted and not yet acknowledged by the broker.");
        let _ = writeln!(o, "medgw_buffer_depth{{gateway=\"{gw}\"}} {}", b.depth);
        family(&mut o, "medgw_buffer_bytes", "gauge", "Bytes the buffer uses on disk.");
        let _ = writeln!(o, "medgw_buffer_bytes{{gateway=\"{gw}\"}} {}", b.bytes);
        family(&mut o, "medgw_buffer_max_bytes", "gauge", "The buffer's size limit.");
        let _ = writeln!(o, "medgw_buffer_max_bytes{{gateway=\"{gw}\"}} {}", b.max_bytes);
        family(&mut o, "medgw_buffer_oldest_age_seconds", "gauge", "Age of the oldest buffered observation (0 when empty).");
        let age = b.oldest.map(|t| (medgw_protocols::Timestamp::now().0 - t.0).max(0) as f64 / 1000.0).unwrap_or(0.0);
        let _ = writeln!(o, "medgw_buffer_oldest_age_seconds{{gateway=\"{gw}\"}} {age}");
        family(&mut o, "medgw_buffer_dropped_total", "counter", "Observations deleted by the drop-oldest policy.");
        let _ = writeln!(o, "medgw_buffer_dropped_total{{gateway=\"{gw}\"}} {}", b.dropped_total);
        family(&mut o, "medgw_buffer_disk_full", "gauge", "1 while the buffer's file system is full (buffer-disk-full), else 0.");
        let _ = writeln!(o, "medgw_buffer_disk_full{{gateway=\"{gw}\"}} {}", u8::from(b.disk_full));
        if let Some(free) = b.disk_free_bytes {
            family(&mut o, "medgw_buffer_disk_free_bytes", "gauge", "Free bytes on the buffer's file system.");
            let _ = writeln!(o, "medgw_buffer_disk_free_bytes{{gateway=\"{gw}\"}} {free}");
        }
        family(&mut o, "medgw_buffer_capacity_bytes", "gauge", "What buffered entries may use now (lowered on a small or full disk).");
        let _ = writeln!(o, "medgw_buffer_capacity_bytes{{gateway=\"{gw}\"}} {}", b.capacity_bytes);
        family(&mut o, "medgw_buffer_reserve_writes_total", "counter", "Times the disk reserve file was written since start (flash wear).");
        let _ = writeln!(o, "medgw_buffer_reserve_writes_total{{gateway=\"{gw}\"}} {}", b.reserve_writes);
        family(
            &mut o,
            "medgw_buffer_dead_lettered_total",
            "counter",
            "Observations a sink's receiver rejected for good (kept as dead letters).",
        );
        let _ = writeln!(o, "medgw_buffer_dead_lettered_total{{gateway=\"{gw}\"}} {}", b.dead_lettered);
        if b.wave_max_bytes > 0 {
            family(&mut o, "medgw_buffer_wave_segments", "gauge", "Durable wave segments stored, waiting for the broker.");
            let _ = writeln!(o, "medgw_buffer_wave_segments{{gateway=\"{gw}\"}} {}", b.wave_segments);
            family(&mut o, "medgw_buffer_wave_bytes", "gauge", "Bytes durable wave segments occupy, of their budget ([waves] max_bytes).");
            let _ = writeln!(o, "medgw_buffer_wave_bytes{{gateway=\"{gw}\"}} {}", b.wave_bytes);
            family(&mut o, "medgw_buffer_wave_max_bytes", "gauge", "The durable waves' budget ([waves] max_bytes).");
            let _ = writeln!(o, "medgw_buffer_wave_max_bytes{{gateway=\"{gw}\"}} {}", b.wave_max_bytes);
            family(&mut o, "medgw_buffer_waves_dropped_total", "counter", "Stored wave segments deleted by the waves' drop-oldest.");
            let _ = writeln!(o, "medgw_buffer_waves_dropped_total{{gateway=\"{gw}\"}} {}", b.waves_dropped_total);
        }
        mllp(&mut o, &gw, &super::mllp_reports(r, Some(&b)));
    }
    o
}

/// Per `[[sink]]` (MLLP) families, labelled by sink name.
fn mllp(o: &mut String, gw: &str, sinks: &[super::MllpSinkReport]) {
    if sinks.is_empty() {
        return;
    }
    type Get = fn(&super::MllpSinkReport) -> u64;
    let families: [(&str, &str, &str, Get); 10] = [
        ("medgw_mllp_connected", "gauge", "1 while the MLLP sink has a connection to its receiver.", |m| u64::from(m.connected)),
        ("medgw_mllp_in_flight", "gauge", "Messages sent and awaiting an ACK (or a retry).", |m| m.in_flight),
        ("medgw_mllp_backlog", "gauge", "Observations buffered that the sink has not delivered yet.", |m| m.backlog.unwrap_or(0)),
        ("medgw_mllp_acked_messages_total", "counter", "Messages the receiver accepted (AA, CA).", |m| m.acked_messages),
        ("medgw_mllp_acked_observations_total", "counter", "Observations the receiver accepted.", |m| m.acked_observations),
        ("medgw_mllp_rejected_total", "counter", "ACKs that refused or failed a message (AR, CR, AE, CE).", |m| m.rejected),
        ("medgw_mllp_dead_lettered_messages_total", "counter", "Messages given up after AR/CR or the AE retries.", |m| {
            m.dead_lettered_messages
        }),
        ("medgw_mllp_dead_lettered_observations_total", "counter", "Observations in dead-lettered messages.", |m| {
            m.dead_lettered_observations
        }),
        ("medgw_mllp_reconnects_total", "counter", "Connections to the receiver opened after the first.", |m| m.reconnects),
        ("medgw_mllp_ack_timeouts_total", "counter", "Connections closed because no ACK came in time.", |m| m.ack_timeouts),
    ];
    for (name, kind, help, get) in families {
        family(o, name, kind, help);
        for m in sinks {
            let _ = writeln!(o, "{name}{{gateway=\"{gw}\",sink=\"{}\"}} {}", label(&m.name), get(m));
        }
    }
}

/// Per `[[sink]]` carrying alarms (PCD-04 to an Alarm Manager), labelled by sink name.
fn mllp_alarms(o: &mut String, gw: &str, sinks: &[std::sync::Arc<crate::sink::mllp::alarms::AlarmSinkStats>]) {
    use crate::sink::mllp::alarms::AlarmSinkStats;
    if sinks.is_empty() {
        return;
    }
    type Get = fn(&AlarmSinkStats) -> u64;
    let families: [(&str, &str, &str, Get); 8] = [
        ("medgw_mllp_alarm_connected", "gauge", "1 while the alarm sink has a connection to its Alarm Manager.", |m| {
            u64::from(m.connected.load(Ordering::Relaxed))
        }),
        ("medgw_mllp_alarm_waiting", "gauge", "Alarm events queued or awaiting an ACK.", |m| m.waiting.load(Ordering::Relaxed)),
        ("medgw_mllp_alarm_acked_total", "counter", "Alarm events the Alarm Manager accepted (AA, CA).", |m| {
            m.acked.load(Ordering::Relaxed)
        }),
        ("medgw_mllp_alarm_refused_total", "counter", "Alarm events the Alarm Manager refused (AR, CR).", |m| {
            m.refused.load(Ordering::Relaxed)
        }),
        ("medgw_mllp_alarm_failed_total", "counter", "Alarm events given up after the AE/CE retries.", |m| {
            m.failed.load(Ordering::Relaxed)
        }),
        ("medgw_mllp_alarm_dropped_total", "counter", "Alarm events dropped: the queue for the Alarm Manager was full.", |m| {
            m.dropped.load(Ordering::Relaxed)
        }),
        ("medgw_mllp_alarm_reconnects_total", "counter", "Connections to the Alarm Manager opened after the first.", |m| {
            m.reconnects.load(Ordering::Relaxed)
        }),
        ("medgw_mllp_alarm_ack_timeouts_total", "counter", "Alarm connections closed because no ACK came in time.", |m| {
            m.ack_timeouts.load(Ordering::Relaxed)
        }),
    ];
    for (name, kind, help, get) in families {
        family(o, name, kind, help);
        for m in sinks {
            let _ = writeln!(o, "{name}{{gateway=\"{gw}\",sink=\"{}\"}} {}", label(&m.name), get(m));
        }
    }
}
