//! medgw's own IHE PCD-01 structure checks, beside hl7apy's v2.6 validation (which knows
//! nothing of PCD-01): the profile in MSH-21, the containment tree in OBX-4 (every metric's MDS,
//! VMD and channel rows present, before it and in order; OBX-1 numbered from 1) and an EUI-64
//! in OBX-18 of every OBX row. `tests/validators/hl7-validate.py` makes the same checks on the
//! running gateway's output.

fn field<'a>(seg: &[&'a str], n: usize) -> &'a str {
    seg.get(n).copied().unwrap_or("")
}

/// Checks one message (segments separated by CR). `Err` says what is wrong.
pub fn check(msg: &str) -> Result<(), String> {
    let segs: Vec<Vec<&str>> = msg.split('\r').filter(|s| !s.is_empty()).map(|s| s.split('|').collect()).collect();
    let msh = segs.first().ok_or("empty message")?;
    if field(msh, 0) != "MSH" || field(msh, 8) != "ORU^R01^ORU_R01" {
        return Err(format!("not an ORU^R01: {msh:?}"));
    }
    // MSH-1 is the separator, so MSH-n is index n-1.
    if field(msh, 20).split('^').nth(2) != Some("1.3.6.1.4.1.19376.1.6.1.1.1") {
        return Err(format!("MSH-21 {:?} is not the PCD-01 profile", field(msh, 20)));
    }
    let eui = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b));
    // (vmd, channel, metric) of the last row; vmd 0 = only the MDS row seen so far.
    let mut at: Option<(u32, u32, u32)> = None;
    let mut metrics = 0;
    for (i, obx) in segs.iter().filter(|s| s[0] == "OBX").enumerate() {
        let row = format!("OBX {}", field(obx, 1));
        if field(obx, 1) != (i + 1).to_string() {
            return Err(format!("{row}: OBX-1 should be {}", i + 1));
        }
        let ei: Vec<&str> = field(obx, 18).split('^').collect();
        if ei.len() < 4 || !eui(ei[0]) || ei[2] != ei[0] || ei[3] != "EUI-64" {
            return Err(format!("{row}: OBX-18 {:?} is not <EUI-64>^<ns>^<EUI-64>^EUI-64", field(obx, 18)));
        }
        let parts: Vec<u32> = field(obx, 4).split('.').map(|p| p.parse().unwrap_or(u32::MAX)).collect();
        let [mds, v, c, m] = parts[..] else {
            return Err(format!("{row}: OBX-4 {:?} is not MDS.VMD.CHAN.METRIC", field(obx, 4)));
        };
        if mds != 1 || parts.contains(&u32::MAX) {
            return Err(format!("{row}: OBX-4 {:?} is not in MDS 1", field(obx, 4)));
        }
        let description = m == 0;
        if description && (!field(obx, 2).is_empty() || !field(obx, 5).is_empty() || field(obx, 11) != "X") {
            return Err(format!("{row}: a device-description row has a value or OBX-11 is not X"));
        }
        if !description && field(obx, 2).is_empty() {
            return Err(format!("{row}: a metric without a value type"));
        }
        at = Some(match (at, v, c, m) {
            (None, 0, 0, 0) => (0, 0, 0),
            (None, ..) => return Err(format!("{row}: the first OBX is not the MDS row 1.0.0.0")),
            (Some((pv, _, _)), v, 0, 0) if v == pv + 1 => (v, 0, 0),
            (Some((pv, pc, _)), v, c, 0) if v == pv && v > 0 && c == pc + 1 => (v, c, 0),
            (Some((pv, pc, pm)), v, c, m) if v == pv && c == pc && c > 0 && m == pm + 1 => {
                metrics += 1;
                (v, c, m)
            }
            (Some(p), ..) => return Err(format!("{row}: OBX-4 {:?} does not follow {p:?} in the containment tree", field(obx, 4))),
        });
    }
    if metrics == 0 {
        return Err("no metric row".into());
    }
    Ok(())
}
