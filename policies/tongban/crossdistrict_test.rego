package tongban.crossdistrict_test

import data.tongban.crossdistrict

nanhai := "440605"

liwan := "440103"

llc_case := {
	"from": nanhai,
	"to": liwan,
	"item": {"basic_code": "000105001000"},
	"applicant": {"kind": "ENTERPRISE"},
	"channel": "COUNTER",
	"materials": ["M001", "M002", "M003", "M004"],
	"time": "2026-11-27T09:45:00+08:00",
}

food_case := {
	"from": nanhai,
	"to": liwan,
	"item": {"basic_code": "000103011000"},
	"applicant": {"kind": "PERSON"},
	"channel": "COUNTER",
	"materials": ["M501", "M502", "M503", "M504"],
	"time": "2027-03-01T10:00:00+08:00",
}

codes(d) := [r.code | some r in d.reasons]

decide(req) := d if {
	d := crossdistrict.decision with input as req
}

# A catalog with an item that stops being cross-district on 2026-01-01 and
# one that offers ONLINE and JOINT.
limited_catalog := {
	"departments": {"market": {"name": "市场监督管理局", "codes": {nanhai: "N", liwan: "L"}}},
	"items": {
		"900000000001": {
			"name": "试点到期事项",
			"department": "market",
			"cross_district": true,
			"applicant_kinds": ["PERSON"],
			"modes": ["REMOTE_RECEIPT"],
			"directions": [[nanhai, liwan]],
			"required_materials": {},
			"promised_days": {nanhai: 2, liwan: 3},
			"effective_from": "2020-01-01",
			"effective_until": "2026-01-01",
		},
		"900000000002": {
			"name": "网办或联办事项",
			"department": "market",
			"cross_district": true,
			"applicant_kinds": ["PERSON"],
			"modes": ["ONLINE", "JOINT"],
			"directions": [[nanhai, liwan]],
			"required_materials": {},
			"promised_days": {nanhai: 2, liwan: 3},
			"effective_from": "2020-01-01",
			"effective_until": null,
		},
	},
}

limited_case(code, t, channel) := {
	"from": nanhai,
	"to": liwan,
	"item": {"basic_code": code},
	"applicant": {"kind": "PERSON"},
	"channel": channel,
	"materials": [],
	"time": t,
}

decide_limited(req) := d if {
	d := crossdistrict.decision with input as req with data.tongban.catalog as limited_catalog
}

# --- the happy paths ---------------------------------------------------------

test_llc_counter_allowed if {
	decide(llc_case) == {
		"allow": true,
		"mode": "REMOTE_RECEIPT",
		"target_impl_code": "11440103MB2D31010A000105001000",
		"promised_days": 6,
		"missing_materials": [],
		"reasons": [],
	}
}

test_physician_liwan_to_nanhai_allowed if {
	req := {
		"from": liwan,
		"to": nanhai,
		"item": {"basic_code": "000114001000"},
		"applicant": {"kind": "PERSON"},
		"channel": "COUNTER",
		"materials": ["M201", "M202", "M203", "M204"],
		"time": "2026-11-27T10:20:00+08:00",
	}
	d := decide(req)
	d.allow == true
	d.mode == "REMOTE_RECEIPT"
	d.target_impl_code == "11440605MB2C32020N000114001000"
	d.promised_days == 20
}

test_promised_days_of_owning_district if {
	d := decide(food_case)
	d.allow == true
	d.promised_days == 10
	d.target_impl_code == "11440103MB2D31010A000103011000"
}

# --- rules 1 and 2 short-circuit ----------------------------------------------

test_item_unknown_is_only_reason if {
	d := decide(object.union(llc_case, {"item": {"basic_code": "999999999999"}, "from": "110000", "materials": []}))
	codes(d) == ["item_unknown"]
	d.allow == false
	d.missing_materials == []
	not d.mode
	not d.target_impl_code
	not d.promised_days
}

test_item_missing_basic_code_is_unknown if {
	codes(decide(object.remove(llc_case, ["item"]))) == ["item_unknown"]
}

test_item_not_cross_district_is_only_reason if {
	req := {
		"from": nanhai,
		"to": liwan,
		"item": {"basic_code": "000102003000"},
		"applicant": {"kind": "ENTERPRISE"},
		"channel": "COUNTER",
		"materials": ["M999"],
		"time": "2026-11-27T11:15:00+08:00",
	}
	d := decide(req)
	codes(d) == ["item_not_cross_district"]
	d.missing_materials == []
	d.allow == false
	not d.mode
}

test_item_without_cross_district_flag_does_not_cross if {
	req := limited_case("900000000002", "2026-03-01T00:00:00+08:00", "ONLINE")
	decide_limited(req).allow == true
	unflagged := json.remove(limited_catalog, ["items/900000000002/cross_district"])
	d := crossdistrict.decision with input as req with data.tongban.catalog as unflagged
	codes(d) == ["item_not_cross_district"]
}

# --- rules 3 to 7 ---------------------------------------------------------------

test_direction_not_enabled if {
	d := decide(object.union(food_case, {"from": liwan, "to": nanhai}))
	codes(d) == ["direction_not_enabled"]
	d.allow == false
	not d.mode
	not d.target_impl_code
	not d.promised_days
}

test_direction_to_self_not_enabled if {
	codes(decide(object.union(llc_case, {"to": nanhai}))) == ["direction_not_enabled"]
}

test_direction_missing_fields_not_enabled if {
	codes(decide(object.remove(llc_case, ["from"]))) == ["direction_not_enabled"]
	codes(decide(object.remove(llc_case, ["to"]))) == ["direction_not_enabled"]
}

test_applicant_kind_not_allowed if {
	codes(decide(object.union(llc_case, {"applicant": {"kind": "PERSON"}}))) == ["applicant_kind_not_allowed"]
}

test_applicant_kind_missing_not_allowed if {
	codes(decide(object.remove(llc_case, ["applicant"]))) == ["applicant_kind_not_allowed"]
	codes(decide(object.union(object.remove(llc_case, ["applicant"]), {"applicant": {}}))) == ["applicant_kind_not_allowed"]
}

test_channel_missing_no_mode if {
	codes(decide(object.remove(llc_case, ["channel"]))) == ["no_mode_for_channel"]
	codes(decide(object.union(llc_case, {"channel": "FAX"}))) == ["no_mode_for_channel"]
}

test_not_yet_effective if {
	codes(decide(object.union(food_case, {"time": "2026-11-27T09:45:00+08:00"}))) == ["not_yet_effective"]
}

test_invalid_time_fails_closed if {
	codes(decide(object.union(llc_case, {"time": "27/11/2026"}))) == ["not_yet_effective"]
}

test_missing_time_fails_closed if {
	codes(decide(object.remove(llc_case, ["time"]))) == ["not_yet_effective"]
}

test_expired if {
	codes(decide_limited(limited_case("900000000001", "2026-03-01T00:00:00+08:00", "COUNTER"))) == ["expired"]
}

test_no_mode_for_online_channel if {
	req := {
		"from": liwan,
		"to": nanhai,
		"item": {"basic_code": "000114001000"},
		"applicant": {"kind": "PERSON"},
		"channel": "ONLINE",
		"materials": ["M201", "M202", "M203", "M204"],
		"time": "2026-11-27T10:20:00+08:00",
	}
	codes(decide(req)) == ["no_mode_for_channel"]
}

test_no_mode_for_counter_channel if {
	req := {
		"from": nanhai,
		"to": liwan,
		"item": {"basic_code": "000141002000"},
		"applicant": {"kind": "PERSON"},
		"channel": "COUNTER",
		"materials": ["M301"],
		"time": "2026-11-27T10:20:00+08:00",
	}
	codes(decide(req)) == ["no_mode_for_channel"]
}

test_materials_missing_sorted if {
	d := decide(object.union(llc_case, {"materials": ["M002", "M999"]}))
	codes(d) == ["materials_missing"]
	d.missing_materials == ["M001", "M003", "M004"]
	d.allow == false
	not d.mode
}

test_materials_absent_all_missing if {
	d := decide(object.remove(llc_case, ["materials"]))
	d.missing_materials == ["M001", "M002", "M003", "M004"]
}

test_extra_materials_allowed if {
	d := decide(object.union(llc_case, {"materials": ["M004", "M777", "M003", "M002", "M001", "M001"]}))
	d.allow == true
	d.missing_materials == []
}

# --- every failing rule among 3–7 is reported, in table order -------------------

test_all_reasons_in_order if {
	req := {
		"from": liwan,
		"to": nanhai,
		"item": {"basic_code": "000103011000"},
		"applicant": {"kind": "OTHER_ORG"},
		"channel": "ONLINE",
		"materials": ["M504", "M502"],
		"time": "2026-11-27T09:45:00+08:00",
	}
	d := decide(req)
	codes(d) == [
		"direction_not_enabled",
		"applicant_kind_not_allowed",
		"not_yet_effective",
		"no_mode_for_channel",
		"materials_missing",
	]
	d.missing_materials == ["M501", "M503"]
}

test_expired_before_mode_and_materials if {
	req := object.union(limited_case("900000000001", "2027-01-01T00:00:00+08:00", "ONLINE"), {"applicant": {"kind": "ENTERPRISE"}})
	d := decide_limited(req)
	codes(d) == ["applicant_kind_not_allowed", "expired", "no_mode_for_channel"]
}

test_every_reason_has_a_chinese_message if {
	req := {
		"from": liwan,
		"to": nanhai,
		"item": {"basic_code": "000103011000"},
		"applicant": {"kind": "OTHER_ORG"},
		"channel": "ONLINE",
		"materials": [],
		"time": "2026-11-27T09:45:00+08:00",
	}
	reasons := array.concat(
		array.concat(decide(req).reasons, decide(object.union(req, {"item": {"basic_code": "1"}})).reasons),
		array.concat(
			decide(object.union(llc_case, {"item": {"basic_code": "000102003000"}})).reasons,
			decide_limited(limited_case("900000000001", "2027-01-01T00:00:00+08:00", "COUNTER")).reasons,
		),
	)
	count(reasons) == 8
	every r in reasons {
		object.keys(r) == {"code", "message"}
		regex.match(`^\p{Han}.*。$`, r.message)
	}
}

# --- rule 5 boundaries: inclusive from, exclusive until, any offset -------------

test_effective_from_inclusive if {
	decide(object.union(food_case, {"time": "2027-01-01T00:00:00+08:00"})).allow == true
}

test_effective_from_last_nanosecond_before if {
	codes(decide(object.union(food_case, {"time": "2026-12-31T23:59:59.999999999+08:00"}))) == ["not_yet_effective"]
}

test_effective_from_in_utc if {
	decide(object.union(food_case, {"time": "2026-12-31T16:00:00Z"})).allow == true
	codes(decide(object.union(food_case, {"time": "2026-12-31T15:59:59Z"}))) == ["not_yet_effective"]
}

test_effective_from_other_offset_compared_as_instant if {
	# Later as a string than 2027-01-01, but an hour before midnight in +08:00.
	codes(decide(object.union(food_case, {"time": "2027-01-01T00:30:00+09:30"}))) == ["not_yet_effective"]

	# Earlier as a string, but already 2027-01-01T01:00:00+08:00.
	decide(object.union(food_case, {"time": "2026-12-31T12:00:00-05:00"})).allow == true
}

test_effective_until_exclusive if {
	decide_limited(limited_case("900000000001", "2025-12-31T23:59:59.999999999+08:00", "COUNTER")).allow == true
	codes(decide_limited(limited_case("900000000001", "2026-01-01T00:00:00+08:00", "COUNTER"))) == ["expired"]
}

test_effective_until_other_offsets if {
	codes(decide_limited(limited_case("900000000001", "2025-12-31T16:00:00Z", "COUNTER"))) == ["expired"]
	decide_limited(limited_case("900000000001", "2025-12-31T15:59:59Z", "COUNTER")).allow == true
	codes(decide_limited(limited_case("900000000001", "2025-12-31T20:00:00-04:00", "COUNTER"))) == ["expired"]
}

# --- rule 6: mode choice --------------------------------------------------------

test_mode_online_channel_prefers_online if {
	decide(object.union(llc_case, {"channel": "ONLINE"})).mode == "ONLINE"
}

test_mode_post_channel_prefers_remote_receipt if {
	decide(object.union(llc_case, {"channel": "POST"})).mode == "REMOTE_RECEIPT"
}

test_mode_joint_when_preferred_not_listed if {
	fund := {
		"from": nanhai,
		"to": liwan,
		"item": {"basic_code": "000131005000"},
		"applicant": {"kind": "PERSON"},
		"materials": ["M401", "M402"],
		"time": "2026-11-27T09:45:00+08:00",
	}
	every channel in ["ONLINE", "COUNTER", "POST"] {
		d := decide(object.union(fund, {"channel": channel}))
		d.mode == "JOINT"
		d.promised_days == 15
		d.target_impl_code == "11440103MB2D340403000131005000"
	}
}

test_mode_preferred_beats_joint if {
	decide_limited(limited_case("900000000002", "2026-03-01T00:00:00+08:00", "ONLINE")).mode == "ONLINE"
	decide_limited(limited_case("900000000002", "2026-03-01T00:00:00+08:00", "COUNTER")).mode == "JOINT"
}

test_mode_online_item_online_channel if {
	req := {
		"from": liwan,
		"to": nanhai,
		"item": {"basic_code": "000141002000"},
		"applicant": {"kind": "PERSON"},
		"channel": "ONLINE",
		"materials": ["M301"],
		"time": "2026-11-27T10:20:00+08:00",
	}
	d := decide(req)
	d.mode == "ONLINE"
	d.target_impl_code == "11440605MB2C33030Y000141002000"
	d.promised_days == 1
}
