//! Remote operations of the data export protocol: the ROapdus after the SPpdu, the event
//! report and action arguments/results, and the poll request and reply layouts (guide ch. 5
//! "Definition of the Data Export Protocol"; protocols.md §3).
//!
//! ```text
//! SPpdu     session_id E100 | p_context_id u16
//! ROapdus   ro_type u16 (1 ROIV, 2 RORS, 3 ROER, 5 ROLRS) | length u16 (bytes that follow)
//!  ROIV     invoke_id u16 | command_type u16 | length u16 | argument
//!  RORS     invoke_id u16 | command_type u16 | length u16 | result
//!  ROLRS    state u8 (1 first, 2 middle, 3 last) | count u8 | invoke_id | command_type | length | result
//!  ROER     invoke_id u16 | error_value u16 | length u16 | parameter            [ROER body: single source]
//! EventReportArgument  managed_object(6) | event_time RelativeTime | event_type u16 | length | info
//! EventReportResult    managed_object(6) | current_time RelativeTime | event_type u16 | length | info
//! ActionArgument       managed_object(6) | scope u32 | action_type u16 | length | argument
//! ActionResult         managed_object(6) | action_type u16 | length | result
//! ManagedObjectId      m_obj_class u16 | context_id u16 | handle u16
//! PollMdibDataReq      poll_number u16 | polled_obj_type (partition u16, code u16) | polled_attr_grp u16
//! PollMdibDataReqExt   PollMdibDataReq | poll_ext_attr AttributeList
//! PollMdibDataReply    poll_number u16 | rel_time_stamp u32 | abs_time_stamp(8) | polled_obj_type(4) |
//!                      polled_attr_grp u16 | poll_info_list
//! PollMdibDataReplyExt poll_number u16 | sequence_no u16 | rel_time_stamp | abs_time_stamp |
//!                      polled_obj_type | polled_attr_grp | poll_info_list
//! PollInfoList         count u16 | length u16 | SingleContextPoll[count]
//! SingleContextPoll    context_id u16 | count u16 | length u16 | ObservationPoll[count]
//! ObservationPoll      obj_handle u16 | AttributeList
//! ```
//!
//! Sources: VSC (`DataConstants`, the `*Apdu`, `ActionResult`, `PollMdibDataReply[Ext]`,
//! `EventReportArgument` classes, and its fixed header sizes 44/46/48 for the poll replies), ICE
//! (`requestSinglePoll`, `requestExtendedPoll`, `EventReportImpl.createConfirm`), KOS
//! (`MDSCreateResult`, `ActionArgument`). The extended poll request layout is confirmed by VSC's
//! `ext_poll_request_msg` bytes and ICE's `ExtendedPollDataRequest.getPollExtra()`.

use crate::error::{Error, Result};

use super::attributes::{AbsoluteTime, AttributeList, RelativeTime};
use super::session::{write_sp_pdu, DATA_CONTEXT_ID};
use super::{Reader, Writer};

/// ROapdus types.
pub mod ro {
    pub const ROIV: u16 = 1;
    pub const RORS: u16 = 2;
    pub const ROER: u16 = 3;
    pub const ROLRS: u16 = 5;
}

/// Command types of ROIV/RORS.
pub mod command {
    pub const EVENT_REPORT: u16 = 0;
    pub const CONFIRMED_EVENT_REPORT: u16 = 1;
    pub const GET: u16 = 3;
    pub const SET: u16 = 4;
    pub const CONFIRMED_SET: u16 = 5;
    pub const CONFIRMED_ACTION: u16 = 7;
}

/// ROLRS linked-result states (VSC `RORLS_*`: "last RORLSapdu, one RORSapdu to follow").
pub mod linked {
    pub const FIRST: u8 = 1;
    pub const NOT_FIRST_NOT_LAST: u8 = 2;
    pub const LAST: u8 = 3;
}

/// Action types (VSC, ICE `ObjectClass`; protocols.md §3).
pub mod action {
    pub const NOM_ACT_POLL_MDIB_DATA: u16 = 0x0C16;
    pub const NOM_ACT_POLL_MDIB_DATA_EXT: u16 = 0xF13B;
}

/// Event type of the MDS create event report (VSC, ICE, KOS).
pub const NOM_NOTI_MDS_CREAT: u16 = 0x0D06;

/// Managed object classes (VSC `ObjectClasses`, protocols.md §3).
pub mod class {
    pub const NOM_MOC_VMO_METRIC_NU: u16 = 6;
    pub const NOM_MOC_VMO_METRIC_SA_RT: u16 = 9;
    pub const NOM_MOC_VMS_MDS: u16 = 0x21;
    pub const NOM_MOC_PT_DEMOG: u16 = 0x2A;
    pub const NOM_MOC_VMO_AL_MON: u16 = 0x36;
}

/// Nomenclature partitions (VSC `PartitionIDs`).
pub mod partition {
    pub const NOM_PART_OBJ: u16 = 1;
    pub const NOM_PART_SCADA: u16 = 2;
    pub const NOM_PART_DIM: u16 = 4;
}

/// ROER error values (VSC `RemoteOpErrors`) **[single source]**.
pub fn error_text(error_value: u16) -> &'static str {
    match error_value {
        0 => "remote operation error: no such object class",
        1 => "remote operation error: no such object instance",
        2 => "remote operation error: access denied",
        7 => "remote operation error: get list error",
        8 => "remote operation error: set list error",
        9 => "remote operation error: no such action",
        10 => "remote operation error: processing failure",
        15 => "remote operation error: invalid argument value",
        16 => "remote operation error: invalid scope",
        17 => "remote operation error: invalid object instance",
        _ => "remote operation error",
    }
}

/// ManagedObjectId.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedObjectId {
    pub class: u16,
    pub context_id: u16,
    pub handle: u16,
}

impl ManagedObjectId {
    /// The MDS itself: class NOM_MOC_VMS_MDS, context 0, handle 0.
    pub const MDS: ManagedObjectId = ManagedObjectId { class: class::NOM_MOC_VMS_MDS, context_id: 0, handle: 0 };

    pub fn read(r: &mut Reader<'_>) -> Result<ManagedObjectId> {
        Ok(ManagedObjectId { class: r.u16()?, context_id: r.u16()?, handle: r.u16()? })
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.class)?;
        w.u16(self.context_id)?;
        w.u16(self.handle)
    }
}

/// TYPE: a nomenclature partition and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectType {
    pub partition: u16,
    pub code: u16,
}

impl ObjectType {
    pub const NUMERICS: ObjectType = ObjectType { partition: partition::NOM_PART_OBJ, code: class::NOM_MOC_VMO_METRIC_NU };
    pub const MDS: ObjectType = ObjectType { partition: partition::NOM_PART_OBJ, code: class::NOM_MOC_VMS_MDS };
    /// The alert monitor (its P and T alarm lists, `alarms.rs`).
    pub const ALERT_MONITOR: ObjectType = ObjectType { partition: partition::NOM_PART_OBJ, code: class::NOM_MOC_VMO_AL_MON };
    /// The patient demographics object (`demographics.rs`).
    pub const PATIENT_DEMOGRAPHICS: ObjectType = ObjectType { partition: partition::NOM_PART_OBJ, code: class::NOM_MOC_PT_DEMOG };

    pub fn read(r: &mut Reader<'_>) -> Result<ObjectType> {
        Ok(ObjectType { partition: r.u16()?, code: r.u16()? })
    }

    pub fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        w.u16(self.partition)?;
        w.u16(self.code)
    }
}

/// One remote-operation APDU, checked against its declared lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apdu<'a> {
    Invoke { invoke_id: u16, command: u16, argument: &'a [u8] },
    Result { invoke_id: u16, command: u16, result: &'a [u8] },
    LinkedResult { state: u8, count: u8, invoke_id: u16, command: u16, result: &'a [u8] },
    Error { invoke_id: u16, error_value: u16, parameter: &'a [u8] },
}

impl Apdu<'_> {
    /// A short name for logs and `UnexpectedMessage` errors.
    pub fn name(&self) -> &'static str {
        match self {
            Apdu::Invoke { .. } => "remote operation invoke",
            Apdu::Result { .. } => "remote operation result",
            Apdu::LinkedResult { .. } => "linked result",
            Apdu::Error { .. } => "remote operation error",
        }
    }
}

/// Parses the ROapdus that follows the SPpdu. Bytes after the declared length are ignored.
pub fn parse_apdu(bytes: &[u8]) -> Result<Apdu<'_>> {
    let mut outer = Reader::new(bytes);
    let ro_type = outer.u16()?;
    let mut r = Reader::new(outer.counted()?);
    match ro_type {
        ro::ROIV => {
            let invoke_id = r.u16()?;
            let command = r.u16()?;
            Ok(Apdu::Invoke { invoke_id, command, argument: r.counted()? })
        }
        ro::RORS => {
            let invoke_id = r.u16()?;
            let command = r.u16()?;
            Ok(Apdu::Result { invoke_id, command, result: r.counted()? })
        }
        ro::ROLRS => {
            let state = r.u8()?;
            let count = r.u8()?;
            if !(linked::FIRST..=linked::LAST).contains(&state) {
                return Err(Error::BadField { field: "linked result state", value: state as u32 });
            }
            let invoke_id = r.u16()?;
            let command = r.u16()?;
            Ok(Apdu::LinkedResult { state, count, invoke_id, command, result: r.counted()? })
        }
        ro::ROER => {
            let invoke_id = r.u16()?;
            let error_value = r.u16()?;
            Ok(Apdu::Error { invoke_id, error_value, parameter: r.counted()? })
        }
        other => Err(Error::Unsupported { what: "ROapdus type", value: other as u32 }),
    }
}

/// EventReportArgument (ROIV) or EventReportResult (RORS): the same layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventReport<'a> {
    pub object: ManagedObjectId,
    pub time: RelativeTime,
    pub event_type: u16,
    pub info: &'a [u8],
}

impl<'a> EventReport<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<EventReport<'a>> {
        let mut r = Reader::new(bytes);
        Ok(EventReport {
            object: ManagedObjectId::read(&mut r)?,
            time: RelativeTime::read(&mut r)?,
            event_type: r.u16()?,
            info: r.counted()?,
        })
    }
}

/// MdsCreateInfo: the MDS object and its attributes (VSC reads the list after a 34-byte
/// header: SPpdu 4, ROapdus 4, ROIV 6, EventReportArgument 14, ManagedObjectId 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdsCreateInfo<'a> {
    pub object: ManagedObjectId,
    pub attributes: AttributeList<'a>,
}

impl<'a> MdsCreateInfo<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<MdsCreateInfo<'a>> {
        let mut r = Reader::new(bytes);
        let object = ManagedObjectId::read(&mut r)?;
        let attributes = AttributeList::read(&mut r)?;
        attributes.validate()?;
        Ok(MdsCreateInfo { object, attributes })
    }
}

/// ActionResult (RORS/ROLRS of CONFIRMED_ACTION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionResult<'a> {
    pub object: ManagedObjectId,
    pub action_type: u16,
    pub body: &'a [u8],
}

impl<'a> ActionResult<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<ActionResult<'a>> {
        let mut r = Reader::new(bytes);
        Ok(ActionResult { object: ManagedObjectId::read(&mut r)?, action_type: r.u16()?, body: r.counted()? })
    }
}

/// ActionArgument (ROIV of CONFIRMED_ACTION).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionArgument<'a> {
    pub object: ManagedObjectId,
    pub scope: u32,
    pub action_type: u16,
    pub body: &'a [u8],
}

impl<'a> ActionArgument<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<ActionArgument<'a>> {
        let mut r = Reader::new(bytes);
        Ok(ActionArgument { object: ManagedObjectId::read(&mut r)?, scope: r.u32()?, action_type: r.u16()?, body: r.counted()? })
    }
}

/// PollMdibDataReq, with the extended request's attribute list when it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollRequest<'a> {
    pub poll_number: u16,
    pub obj_type: ObjectType,
    pub attr_group: u16,
    pub ext_attributes: Option<AttributeList<'a>>,
}

impl<'a> PollRequest<'a> {
    pub fn parse(action_type: u16, bytes: &'a [u8]) -> Result<PollRequest<'a>> {
        let mut r = Reader::new(bytes);
        let poll_number = r.u16()?;
        let obj_type = ObjectType::read(&mut r)?;
        let attr_group = r.u16()?;
        let ext_attributes = match action_type {
            action::NOM_ACT_POLL_MDIB_DATA => None,
            action::NOM_ACT_POLL_MDIB_DATA_EXT => Some(AttributeList::read(&mut r)?),
            other => return Err(Error::Unsupported { what: "action type", value: other as u32 }),
        };
        Ok(PollRequest { poll_number, obj_type, attr_group, ext_attributes })
    }
}

/// PollMdibDataReply or PollMdibDataReplyExt (then with `sequence_no`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollReply<'a> {
    pub poll_number: u16,
    pub sequence_no: Option<u16>,
    pub rel_time: RelativeTime,
    pub abs_time: AbsoluteTime,
    pub obj_type: ObjectType,
    pub attr_group: u16,
    pub info: PollInfoList<'a>,
}

impl<'a> PollReply<'a> {
    /// Parses the reply of a poll action; the whole nested list is validated, so that iterating
    /// it afterwards meets no malformed entry.
    pub fn parse(action_type: u16, bytes: &'a [u8]) -> Result<PollReply<'a>> {
        let mut r = Reader::new(bytes);
        let poll_number = r.u16()?;
        let sequence_no = match action_type {
            action::NOM_ACT_POLL_MDIB_DATA => None,
            action::NOM_ACT_POLL_MDIB_DATA_EXT => Some(r.u16()?),
            other => return Err(Error::Unsupported { what: "action type", value: other as u32 }),
        };
        let rel_time = RelativeTime::read(&mut r)?;
        let abs_time = AbsoluteTime::read(&mut r)?;
        let obj_type = ObjectType::read(&mut r)?;
        let attr_group = r.u16()?;
        let info = PollInfoList::read(&mut r)?;
        info.validate()?;
        Ok(PollReply { poll_number, sequence_no, rel_time, abs_time, obj_type, attr_group, info })
    }
}

/// PollInfoList: SingleContextPolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollInfoList<'a> {
    pub count: u16,
    body: &'a [u8],
}

impl<'a> PollInfoList<'a> {
    pub fn read(r: &mut Reader<'a>) -> Result<PollInfoList<'a>> {
        let count = r.u16()?;
        Ok(PollInfoList { count, body: r.counted()? })
    }

    pub fn contexts(&self) -> impl Iterator<Item = Result<SingleContextPoll<'a>>> + 'a {
        super::counted_items(self.body, self.count, "poll info list length", SingleContextPoll::read)
    }

    /// Every observation poll of every context, in order.
    pub fn observations(&self) -> impl Iterator<Item = Result<(u16, ObservationPoll<'a>)>> + 'a {
        self.contexts().flat_map(|c| -> alloc_free::Either<'a> {
            match c {
                Ok(c) => alloc_free::Either::Obs(c.context_id, c.observations()),
                Err(e) => alloc_free::Either::Err(Some(e)),
            }
        })
    }

    pub fn validate(&self) -> Result<()> {
        for o in self.observations() {
            let (_, o) = o?;
            o.attributes.validate()?;
        }
        Ok(())
    }
}

/// A small sum iterator, so that `observations` needs no allocation.
mod alloc_free {
    use super::{ObservationPoll, Result};

    pub enum Either<'a> {
        Obs(u16, super::ObsIter<'a>),
        Err(Option<crate::error::Error>),
    }

    impl<'a> Iterator for Either<'a> {
        type Item = Result<(u16, ObservationPoll<'a>)>;

        fn next(&mut self) -> Option<Self::Item> {
            match self {
                Either::Obs(ctx, it) => it.next().map(|o| o.map(|o| (*ctx, o))),
                Either::Err(e) => e.take().map(Err),
            }
        }
    }
}

/// SingleContextPoll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleContextPoll<'a> {
    pub context_id: u16,
    pub count: u16,
    body: &'a [u8],
}

impl<'a> SingleContextPoll<'a> {
    fn read(r: &mut Reader<'a>) -> Result<SingleContextPoll<'a>> {
        let context_id = r.u16()?;
        let count = r.u16()?;
        Ok(SingleContextPoll { context_id, count, body: r.counted()? })
    }

    pub fn observations(&self) -> ObsIter<'a> {
        super::counted_items(self.body, self.count, "observation poll list length", ObservationPoll::read)
    }
}

/// Iterates the ObservationPolls of one context.
pub type ObsIter<'a> = super::CountedItems<'a, ObservationPoll<'a>>;

/// ObservationPoll: one object's handle and attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservationPoll<'a> {
    pub handle: u16,
    pub attributes: AttributeList<'a>,
}

impl<'a> ObservationPoll<'a> {
    fn read(r: &mut Reader<'a>) -> Result<ObservationPoll<'a>> {
        Ok(ObservationPoll { handle: r.u16()?, attributes: AttributeList::read(r)? })
    }
}

/// Writes SPpdu, ROapdus and the ROIV/RORS/ROLRS header; `body` writes the argument or result,
/// and all three length fields are filled in afterwards.
pub fn write_operation(
    w: &mut Writer<'_>,
    ro_type: u16,
    linked_id: Option<(u8, u8)>,
    invoke_id: u16,
    command: u16,
    body: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<()> {
    write_sp_pdu(w, DATA_CONTEXT_ID)?;
    w.u16(ro_type)?;
    let ro_len = w.begin_len()?;
    if let Some((state, count)) = linked_id {
        w.u8(state)?;
        w.u8(count)?;
    }
    w.u16(invoke_id)?;
    w.u16(command)?;
    let op_len = w.begin_len()?;
    body(w)?;
    w.end_len(op_len)?;
    w.end_len(ro_len)
}

/// Writes a ROER (monitor side).
pub fn write_error(w: &mut Writer<'_>, invoke_id: u16, error_value: u16) -> Result<()> {
    write_sp_pdu(w, DATA_CONTEXT_ID)?;
    w.u16(ro::ROER)?;
    let ro_len = w.begin_len()?;
    w.u16(invoke_id)?;
    w.u16(error_value)?;
    w.u16(0)?;
    w.end_len(ro_len)
}

/// Writes ActionArgument header + `argument`.
pub fn write_action_argument(
    w: &mut Writer<'_>,
    object: &ManagedObjectId,
    action_type: u16,
    argument: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<()> {
    object.write(w)?;
    w.u32(0)?; // scope: fixed 0
    w.u16(action_type)?;
    let at = w.begin_len()?;
    argument(w)?;
    w.end_len(at)
}

/// Writes ActionResult header + `result`.
pub fn write_action_result(
    w: &mut Writer<'_>,
    object: &ManagedObjectId,
    action_type: u16,
    result: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<()> {
    object.write(w)?;
    w.u16(action_type)?;
    let at = w.begin_len()?;
    result(w)?;
    w.end_len(at)
}

/// Writes EventReportArgument/Result header + `info`.
pub fn write_event_report(
    w: &mut Writer<'_>,
    object: &ManagedObjectId,
    time: RelativeTime,
    event_type: u16,
    info: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<()> {
    object.write(w)?;
    w.u32(time.0)?;
    w.u16(event_type)?;
    let at = w.begin_len()?;
    info(w)?;
    w.end_len(at)
}

/// The single poll request (NOM_ACT_POLL_MDIB_DATA) as user data; PP-1 is
/// `encode_poll_request(0, 1, ObjectType::NUMERICS, 0)`.
pub fn encode_poll_request(out: &mut [u8], invoke_id: u16, poll_number: u16, obj_type: ObjectType, attr_group: u16) -> Result<usize> {
    let mut w = Writer::new(out);
    write_operation(&mut w, ro::ROIV, None, invoke_id, command::CONFIRMED_ACTION, |w| {
        write_action_argument(w, &ManagedObjectId::MDS, action::NOM_ACT_POLL_MDIB_DATA, |w| {
            w.u16(poll_number)?;
            obj_type.write(w)?;
            w.u16(attr_group)
        })
    })?;
    Ok(w.len())
}

/// The extended poll request (NOM_ACT_POLL_MDIB_DATA_EXT) with an empty poll_ext_attr list:
/// one reply per request (a NOM_ATTR_TIME_PD_POLL attribute would ask for periodic replies,
/// which medgw does not use: it paces its own requests).
pub fn encode_ext_poll_request(out: &mut [u8], invoke_id: u16, poll_number: u16, obj_type: ObjectType, attr_group: u16) -> Result<usize> {
    let mut w = Writer::new(out);
    write_operation(&mut w, ro::ROIV, None, invoke_id, command::CONFIRMED_ACTION, |w| {
        write_action_argument(w, &ManagedObjectId::MDS, action::NOM_ACT_POLL_MDIB_DATA_EXT, |w| {
            w.u16(poll_number)?;
            obj_type.write(w)?;
            w.u16(attr_group)?;
            w.u16(0)?; // poll_ext_attr count
            w.u16(0) // poll_ext_attr length
        })
    })?;
    Ok(w.len())
}

/// ModifyOperator of a SET's AttributeModEntry: replace the attribute's value (VSC's priority
/// list SET writes 0; a Python client citing the guide p. 64: REPLACE 0, SET_TO_DEFAULT 3).
pub const MODIFY_REPLACE: u16 = 0;

/// The confirmed SET request (ROIV, CMD_CONFIRMED_SET) of one attribute of the MDS with
/// REPLACE: SetArgument = ManagedObjectId | scope u32 (0) | ModificationList { count u16,
/// length u16, AttributeModEntry { modify_operator u16, AVAType }[] } (VSC's priority-list
/// message as ported by PLUS `sendRTSAPriorityMessage`, ICE `SetArgument`). `value` writes the
/// attribute's value.
pub fn encode_set_request(
    out: &mut [u8],
    invoke_id: u16,
    attribute_id: u16,
    value: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<usize> {
    let mut w = Writer::new(out);
    write_operation(&mut w, ro::ROIV, None, invoke_id, command::CONFIRMED_SET, |w| {
        ManagedObjectId::MDS.write(w)?;
        w.u32(0)?;
        w.u16(1)?;
        let list = w.begin_len()?;
        w.u16(MODIFY_REPLACE)?;
        w.u16(attribute_id)?;
        let at = w.begin_len()?;
        value(w)?;
        w.end_len(at)?;
        w.end_len(list)
    })?;
    Ok(w.len())
}

/// One AttributeModEntry of a SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeMod<'a> {
    pub operator: u16,
    pub attribute_id: u16,
    pub value: &'a [u8],
}

/// A SetArgument (monitor side): the object and its modifications, all checked.
pub fn parse_set_argument(bytes: &[u8]) -> Result<(ManagedObjectId, alloc_free_mods::Mods<'_>)> {
    let mut r = Reader::new(bytes);
    let object = ManagedObjectId::read(&mut r)?;
    let _scope = r.u32()?;
    let count = r.u16()?;
    let body = r.counted()?;
    let mods = alloc_free_mods::Mods { r: Reader::new(body), left: count };
    for m in mods.clone() {
        m?;
    }
    Ok((object, mods))
}

/// The modifications of a SetArgument, without allocation.
pub mod alloc_free_mods {
    use super::{AttributeMod, Reader, Result};

    #[derive(Debug, Clone)]
    pub struct Mods<'a> {
        pub(super) r: Reader<'a>,
        pub(super) left: u16,
    }

    impl<'a> Iterator for Mods<'a> {
        type Item = Result<AttributeMod<'a>>;

        fn next(&mut self) -> Option<Self::Item> {
            if self.left == 0 {
                return (self.r.remaining() != 0).then(|| {
                    let n = self.r.remaining();
                    self.r = Reader::new(&[]);
                    Err(crate::error::Error::BadField { field: "modification list length", value: n as u32 })
                });
            }
            self.left -= 1;
            let item = (|| Ok(AttributeMod { operator: self.r.u16()?, attribute_id: self.r.u16()?, value: self.r.counted()? }))();
            if item.is_err() {
                self.left = 0;
                self.r = Reader::new(&[]);
            }
            Some(item)
        }
    }
}

/// SetResult (RORS of CMD_CONFIRMED_SET): the object and the attributes as now set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetResult<'a> {
    pub object: ManagedObjectId,
    pub attributes: AttributeList<'a>,
}

impl<'a> SetResult<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<SetResult<'a>> {
        let mut r = Reader::new(bytes);
        let object = ManagedObjectId::read(&mut r)?;
        let attributes = AttributeList::read(&mut r)?;
        attributes.validate()?;
        Ok(SetResult { object, attributes })
    }
}

/// The MDS create event result (RORS, CMD_CONFIRMED_EVENT_REPORT): the event's invoke id,
/// managed object, time and type echoed back (ICE `createConfirm`). PP-2 is
/// `encode_mds_create_result(1, MDS, RelativeTime(0x000ABD00), NOM_NOTI_MDS_CREAT)`.
pub fn encode_mds_create_result(
    out: &mut [u8],
    invoke_id: u16,
    object: &ManagedObjectId,
    time: RelativeTime,
    event_type: u16,
) -> Result<usize> {
    let mut w = Writer::new(out);
    write_operation(&mut w, ro::RORS, None, invoke_id, command::CONFIRMED_EVENT_REPORT, |w| {
        write_event_report(w, object, time, event_type, |_| Ok(()))
    })?;
    Ok(w.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PP-1 user data (protocols.md §3).
    const PP1: [u8; 36] = [
        0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x1C, 0x00, 0x00, 0x00, 0x07, 0x00, 0x16, 0x00, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x0C, 0x16, 0x00, 0x08, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00,
    ];
    /// PP-2 user data (protocols.md §3).
    const PP2: [u8; 28] = [
        0xE1, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x14, 0x00, 0x01, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0A,
        0xBD, 0x00, 0x0D, 0x06, 0x00, 0x00,
    ];

    #[test]
    fn encoders_produce_pp1_and_pp2() {
        let mut out = [0u8; 64];
        let n = encode_poll_request(&mut out, 0, 1, ObjectType::NUMERICS, 0).unwrap();
        assert_eq!(&out[..n], &PP1);
        let n = encode_mds_create_result(&mut out, 1, &ManagedObjectId::MDS, RelativeTime(0x000A_BD00), NOM_NOTI_MDS_CREAT).unwrap();
        assert_eq!(&out[..n], &PP2);
    }

    #[test]
    fn pp1_parses_back() {
        let apdu = parse_apdu(&PP1[4..]).unwrap();
        let Apdu::Invoke { invoke_id: 0, command: command::CONFIRMED_ACTION, argument } = apdu else { panic!("{apdu:?}") };
        let a = ActionArgument::parse(argument).unwrap();
        assert_eq!(a.object, ManagedObjectId::MDS);
        assert_eq!(a.action_type, action::NOM_ACT_POLL_MDIB_DATA);
        let p = PollRequest::parse(a.action_type, a.body).unwrap();
        assert_eq!((p.poll_number, p.obj_type, p.attr_group, p.ext_attributes), (1, ObjectType::NUMERICS, 0, None));
        let apdu = parse_apdu(&PP2[4..]).unwrap();
        let Apdu::Result { invoke_id: 1, command: command::CONFIRMED_EVENT_REPORT, result } = apdu else { panic!("{apdu:?}") };
        let e = EventReport::parse(result).unwrap();
        assert_eq!((e.time, e.event_type, e.info), (RelativeTime(0x000A_BD00), NOM_NOTI_MDS_CREAT, &[][..]));
    }

    #[test]
    fn ext_poll_request_layout() {
        // The VSC extended numeric poll: ROapdus length 0x20, ROIV length 0x1A, action F1 3B,
        // argument length 0x0C with an empty attribute list.
        let mut out = [0u8; 64];
        let n = encode_ext_poll_request(&mut out, 1, 1, ObjectType::NUMERICS, 0).unwrap();
        assert_eq!(
            &out[..n],
            &[
                0xE1, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x20, 0x00, 0x01, 0x00, 0x07, 0x00, 0x1A, 0x00, 0x21, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0xF1, 0x3B, 0x00, 0x0C, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
            ]
        );
        let Apdu::Invoke { argument, .. } = parse_apdu(&out[4..n]).unwrap() else { panic!() };
        let a = ActionArgument::parse(argument).unwrap();
        let p = PollRequest::parse(a.action_type, a.body).unwrap();
        assert_eq!(p.ext_attributes.map(|l| l.count), Some(0));
    }

    fn ext_reply(info: impl FnOnce(&mut Writer<'_>) -> Result<()>) -> alloc::vec::Vec<u8> {
        let mut out = [0u8; 256];
        let mut w = Writer::new(&mut out);
        write_operation(&mut w, ro::ROLRS, Some((linked::FIRST, 1)), 7, command::CONFIRMED_ACTION, |w| {
            write_action_result(w, &ManagedObjectId::MDS, action::NOM_ACT_POLL_MDIB_DATA_EXT, |w| {
                w.u16(3)?; // poll number
                w.u16(9)?; // sequence
                w.u32(0x0001_0000)?;
                w.put(&AbsoluteTime::UNSET.0)?;
                ObjectType::NUMERICS.write(w)?;
                w.u16(0)?;
                info(w)
            })
        })
        .unwrap();
        let n = w.len();
        out[..n].to_vec()
    }

    #[test]
    fn linked_ext_reply_header_is_48_bytes_as_vsc_reads_it() {
        let bytes = ext_reply(|w| {
            w.u16(0)?;
            w.u16(0)
        });
        // VSC skips 48 bytes of header before the poll info list of a linked extended reply.
        assert_eq!(bytes.len(), 48 + 4);
        let Apdu::LinkedResult { state: 1, count: 1, invoke_id: 7, command: 7, result } = parse_apdu(&bytes[4..]).unwrap() else {
            panic!()
        };
        let ar = ActionResult::parse(result).unwrap();
        let reply = PollReply::parse(ar.action_type, ar.body).unwrap();
        assert_eq!((reply.poll_number, reply.sequence_no, reply.rel_time), (3, Some(9), RelativeTime(0x0001_0000)));
        assert_eq!(reply.info.count, 0);
    }

    #[test]
    fn nested_lists_are_validated() {
        // One context with one observation whose attribute list claims two AVAs but has none.
        let bad = ext_reply(|w| {
            w.u16(1)?;
            let l = w.begin_len()?;
            w.u16(0)?; // context id
            w.u16(1)?; // one observation
            let l2 = w.begin_len()?;
            w.u16(0x55)?; // handle
            w.u16(2)?; // attribute count
            w.u16(0)?; // attribute bytes
            w.end_len(l2)?;
            w.end_len(l)
        });
        let Apdu::LinkedResult { result, .. } = parse_apdu(&bad[4..]).unwrap() else { panic!() };
        let ar = ActionResult::parse(result).unwrap();
        assert!(PollReply::parse(ar.action_type, ar.body).is_err());
        // Context count larger than the bytes.
        let bad = ext_reply(|w| {
            w.u16(2)?;
            w.u16(0)
        });
        let Apdu::LinkedResult { result, .. } = parse_apdu(&bad[4..]).unwrap() else { panic!() };
        let ar = ActionResult::parse(result).unwrap();
        assert!(PollReply::parse(ar.action_type, ar.body).is_err());
    }

    #[test]
    fn apdu_errors_name_the_field() {
        assert_eq!(parse_apdu(&[0, 9, 0, 0]), Err(Error::Unsupported { what: "ROapdus type", value: 9 }));
        assert!(parse_apdu(&[0, 1, 0, 10, 0, 0]).is_err());
        assert_eq!(parse_apdu(&[0, 5, 0, 8, 4, 1, 0, 0, 0, 7, 0, 0]), Err(Error::BadField { field: "linked result state", value: 4 }));
        let e = parse_apdu(&[0, 3, 0, 6, 0, 4, 0, 9, 0, 0]).unwrap();
        assert_eq!(e, Apdu::Error { invoke_id: 4, error_value: 9, parameter: &[] });
        assert_eq!(error_text(9), "remote operation error: no such action");
        assert!(PollReply::parse(0x1234, &[0; 30]).is_err());
    }
}
