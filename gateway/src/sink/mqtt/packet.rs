//! MQTT packets for the sink, over rumqttc's packet codecs for MQTT 3.1.1 and MQTT 5.
//!
//! medgw drives the MQTT session itself (`session.rs`; `window.rs` says why) and uses rumqttc
//! only for what it does well: encoding and decoding packets. This module hides the two protocol
//! versions behind one small vocabulary: what the sink sends and what it needs to know back.

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::QoS;

/// The MQTT protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V311,
    V5,
}

/// What the CONNECT packet says.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub client_id: String,
    pub keep_alive_s: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Last Will: retained on `topic` when the gateway disappears without saying goodbye.
    pub will_topic: String,
    pub will_payload: Bytes,
    /// How many unacknowledged QoS 1 messages the gateway keeps in flight.
    pub receive_maximum: u16,
}

/// One outgoing publish (always QoS 1: the buffer deletes only what the broker acknowledged).
#[derive(Debug, Clone)]
pub struct OutgoingPublish {
    pub pkid: u16,
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// MQTT 5 content type (ignored on 3.1.1).
    pub content_type: Option<&'static str>,
    /// Set when the packet is sent again on the same session.
    pub dup: bool,
}

/// What the sink needs to know from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    ConnAck {
        accepted: bool,
        /// The broker's reason, for logs and events.
        reason: String,
        /// MQTT 5: the broker refused the protocol version (retry with 3.1.1 in `auto`).
        unsupported_version: bool,
        session_present: bool,
        /// MQTT 5 Receive Maximum: the broker's limit on our messages in flight.
        receive_maximum: Option<u16>,
        /// MQTT 5 Maximum Packet Size.
        maximum_packet_size: Option<u32>,
    },
    /// A PUBACK. On MQTT 5 a reason code >= 0x80 is a refusal: the message was NOT delivered.
    PubAck {
        pkid: u16,
        delivered: bool,
        reason: String,
    },
    PingResp,
    /// The broker is closing the connection (MQTT 5 DISCONNECT) with its reason.
    Disconnect {
        reason: String,
    },
    /// Anything else (the sink subscribes to nothing, so this is unexpected but harmless).
    Other(&'static str),
}

/// Packet-level errors.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    #[error("MQTT 3.1.1 packet: {0:?}")]
    V4(rumqttc::mqttbytes::Error),
    #[error("MQTT 5 packet: {0:?}")]
    V5(rumqttc::v5::mqttbytes::Error),
}

const MAX_INCOMING: usize = 1 << 20;

pub fn encode_connect(version: Version, o: &ConnectOptions, buf: &mut BytesMut) -> Result<(), PacketError> {
    match version {
        Version::V311 => {
            use rumqttc::mqttbytes::v4::{Connect, LastWill, Login, Packet};
            let mut c = Connect::new(o.client_id.clone());
            c.keep_alive = o.keep_alive_s;
            c.clean_session = true;
            c.last_will = Some(LastWill::new(o.will_topic.clone(), o.will_payload.to_vec(), QoS::AtLeastOnce, true));
            if let Some(u) = &o.username {
                c.login = Some(Login::new(u.clone(), o.password.clone().unwrap_or_default()));
            }
            Packet::Connect(c).write(buf, usize::MAX).map(|_| ()).map_err(PacketError::V4)
        }
        Version::V5 => {
            use rumqttc::v5::mqttbytes::v5::{Connect, ConnectProperties, LastWill, LastWillProperties, Login, Packet};
            let mut props = ConnectProperties::new();
            props.receive_maximum = Some(u16::MAX);
            props.max_packet_size = Some(MAX_INCOMING as u32);
            let will_props = LastWillProperties {
                delay_interval: None,
                payload_format_indicator: Some(1),
                message_expiry_interval: None,
                content_type: Some("application/json".into()),
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
            };
            let will = LastWill::new(
                o.will_topic.clone(),
                o.will_payload.to_vec(),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                true,
                Some(will_props),
            );
            let login = o.username.as_ref().map(|u| Login::new(u.clone(), o.password.clone().unwrap_or_default()));
            let c = Connect { keep_alive: o.keep_alive_s, client_id: o.client_id.clone(), clean_start: true, properties: Some(props) };
            Packet::Connect(c, Some(will), login).write(buf, None).map(|_| ()).map_err(PacketError::V5)
        }
    }
}

/// Encodes a PUBLISH; takes the message by value so the payload is never copied before it is
/// written into `buf` (the hot path: one call per observation).
pub fn encode_publish(version: Version, p: OutgoingPublish, buf: &mut BytesMut) -> Result<(), PacketError> {
    match version {
        Version::V311 => {
            use rumqttc::mqttbytes::v4::{Packet, Publish};
            let mut publish = Publish::from_bytes(p.topic, QoS::AtLeastOnce, p.payload);
            publish.pkid = p.pkid;
            publish.retain = p.retain;
            publish.dup = p.dup;
            Packet::Publish(publish).write(buf, usize::MAX).map(|_| ()).map_err(PacketError::V4)
        }
        Version::V5 => {
            use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
            let properties = p.content_type.map(|ct| PublishProperties {
                payload_format_indicator: Some(1),
                message_expiry_interval: None,
                topic_alias: None,
                response_topic: None,
                correlation_data: None,
                user_properties: Vec::new(),
                subscription_identifiers: Vec::new(),
                content_type: Some(ct.to_string()),
            });
            let mut publish = Publish::new(p.topic, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, p.payload, properties);
            publish.pkid = p.pkid;
            publish.retain = p.retain;
            publish.dup = p.dup;
            Packet::Publish(publish).write(buf, None).map(|_| ()).map_err(PacketError::V5)
        }
    }
}

/// A QoS 0 PUBLISH (no packet id, no acknowledgement): waveform segments a site chose not to
/// have acknowledged (`[waves] qos = 0`).
pub fn encode_publish_at_most_once(
    version: Version,
    topic: String,
    payload: Bytes,
    content_type: &'static str,
    buf: &mut BytesMut,
) -> Result<(), PacketError> {
    match version {
        Version::V311 => {
            use rumqttc::mqttbytes::v4::{Packet, Publish};
            let publish = Publish::from_bytes(topic, QoS::AtMostOnce, payload);
            Packet::Publish(publish).write(buf, usize::MAX).map(|_| ()).map_err(PacketError::V4)
        }
        Version::V5 => {
            use rumqttc::v5::mqttbytes::v5::{Packet, Publish, PublishProperties};
            let properties =
                PublishProperties { payload_format_indicator: Some(1), content_type: Some(content_type.to_string()), ..Default::default() };
            let publish = Publish::new(topic, rumqttc::v5::mqttbytes::QoS::AtMostOnce, payload, Some(properties));
            Packet::Publish(publish).write(buf, None).map(|_| ()).map_err(PacketError::V5)
        }
    }
}

pub fn encode_ping(version: Version, buf: &mut BytesMut) -> Result<(), PacketError> {
    match version {
        Version::V311 => rumqttc::mqttbytes::v4::Packet::PingReq.write(buf, usize::MAX).map(|_| ()).map_err(PacketError::V4),
        Version::V5 => {
            use rumqttc::v5::mqttbytes::v5::{Packet, PingReq};
            Packet::PingReq(PingReq).write(buf, None).map(|_| ()).map_err(PacketError::V5)
        }
    }
}

pub fn encode_disconnect(version: Version, buf: &mut BytesMut) -> Result<(), PacketError> {
    match version {
        Version::V311 => rumqttc::mqttbytes::v4::Packet::Disconnect.write(buf, usize::MAX).map(|_| ()).map_err(PacketError::V4),
        Version::V5 => {
            use rumqttc::v5::mqttbytes::v5::{Disconnect, DisconnectReasonCode, Packet};
            Packet::Disconnect(Disconnect { reason_code: DisconnectReasonCode::NormalDisconnection, properties: None })
                .write(buf, None)
                .map(|_| ())
                .map_err(PacketError::V5)
        }
    }
}

/// Decodes the next complete packet in `buf`; `Ok(None)` when more bytes are needed.
pub fn decode(version: Version, buf: &mut BytesMut) -> Result<Option<Inbound>, PacketError> {
    match version {
        Version::V311 => {
            use rumqttc::mqttbytes::v4::{ConnectReturnCode, Packet};
            match Packet::read(buf, MAX_INCOMING) {
                Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(e) => Err(PacketError::V4(e)),
                Ok(Packet::ConnAck(c)) => Ok(Some(Inbound::ConnAck {
                    accepted: c.code == ConnectReturnCode::Success,
                    reason: format!("{:?}", c.code),
                    unsupported_version: c.code == ConnectReturnCode::RefusedProtocolVersion,
                    session_present: c.session_present,
                    receive_maximum: None,
                    maximum_packet_size: None,
                })),
                // MQTT 3.1.1 has no PUBACK reason: an acknowledgement is a delivery.
                Ok(Packet::PubAck(a)) => Ok(Some(Inbound::PubAck { pkid: a.pkid, delivered: true, reason: "Success".into() })),
                Ok(Packet::PingResp) => Ok(Some(Inbound::PingResp)),
                Ok(Packet::Disconnect) => Ok(Some(Inbound::Disconnect { reason: "broker disconnect".into() })),
                Ok(_) => Ok(Some(Inbound::Other("unexpected packet"))),
            }
        }
        Version::V5 => {
            use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason};
            match Packet::read(buf, Some(MAX_INCOMING as u32)) {
                Err(rumqttc::v5::mqttbytes::Error::InsufficientBytes(_)) => Ok(None),
                Err(e) => Err(PacketError::V5(e)),
                Ok(Packet::ConnAck(c)) => Ok(Some(Inbound::ConnAck {
                    accepted: c.code == ConnectReturnCode::Success,
                    reason: format!("{:?}", c.code),
                    unsupported_version: matches!(
                        c.code,
                        ConnectReturnCode::UnsupportedProtocolVersion | ConnectReturnCode::RefusedProtocolVersion
                    ),
                    session_present: c.session_present,
                    receive_maximum: c.properties.as_ref().and_then(|p| p.receive_max),
                    maximum_packet_size: c.properties.as_ref().and_then(|p| p.max_packet_size),
                })),
                // MQTT 5 §3.4.2.1: 0x00 Success and 0x10 No matching subscribers are deliveries;
                // every code >= 0x80 means the broker did not accept the message.
                Ok(Packet::PubAck(a)) => Ok(Some(Inbound::PubAck {
                    pkid: a.pkid,
                    delivered: matches!(a.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers),
                    reason: format!("{:?}", a.reason),
                })),
                Ok(Packet::PingResp(_)) => Ok(Some(Inbound::PingResp)),
                Ok(Packet::Disconnect(d)) => Ok(Some(Inbound::Disconnect { reason: format!("{:?}", d.reason_code) })),
                Ok(_) => Ok(Some(Inbound::Other("unexpected packet"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ConnectOptions {
        ConnectOptions {
            client_id: "medgw-test".into(),
            keep_alive_s: 30,
            username: Some("u".into()),
            password: Some("p".into()),
            will_topic: "medgw/v1/gw/status".into(),
            will_payload: Bytes::from_static(b"{\"state\":\"offline\"}"),
            receive_maximum: 100,
        }
    }

    #[test]
    fn connect_and_publish_encode_for_both_versions() {
        for v in [Version::V311, Version::V5] {
            let mut buf = BytesMut::new();
            encode_connect(v, &opts(), &mut buf).unwrap();
            // Fixed header type CONNECT (1 << 4), protocol name "MQTT", level 4 or 5.
            assert_eq!(buf[0], 0x10);
            let level = buf[2 + buf.iter().skip(1).take_while(|b| **b & 0x80 != 0).count() + 6];
            assert_eq!(level, if v == Version::V311 { 4 } else { 5 });
            let mut buf = BytesMut::new();
            let p = OutgoingPublish {
                pkid: 7,
                topic: "a/b".into(),
                payload: Bytes::from_static(b"x"),
                retain: true,
                content_type: Some("application/json"),
                dup: false,
            };
            encode_publish(v, p, &mut buf).unwrap();
            // PUBLISH, QoS 1, retain.
            assert_eq!(buf[0], 0x30 | 0x02 | 0x01);
        }
    }

    #[test]
    fn puback_reason_codes_decide_delivery() {
        // MQTT 5 PUBACK pkid 9, reason 0x87 Not authorized.
        let mut buf = BytesMut::from(&[0x40, 0x03, 0x00, 0x09, 0x87][..]);
        assert_eq!(
            decode(Version::V5, &mut buf).unwrap(),
            Some(Inbound::PubAck { pkid: 9, delivered: false, reason: "NotAuthorized".into() })
        );
        // 0x10 No matching subscribers is a delivery.
        let mut buf = BytesMut::from(&[0x40, 0x03, 0x00, 0x0A, 0x10][..]);
        assert!(matches!(decode(Version::V5, &mut buf).unwrap(), Some(Inbound::PubAck { pkid: 10, delivered: true, .. })));
        // MQTT 3.1.1 PUBACK.
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x00, 0x0B][..]);
        assert!(matches!(decode(Version::V311, &mut buf).unwrap(), Some(Inbound::PubAck { pkid: 11, delivered: true, .. })));
        // Incomplete.
        let mut buf = BytesMut::from(&[0x40, 0x02, 0x00][..]);
        assert_eq!(decode(Version::V311, &mut buf).unwrap(), None);
    }
}
