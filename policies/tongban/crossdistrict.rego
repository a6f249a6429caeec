# METADATA
# title: Cross-district handling decision (跨区通办)
# description: |
#   Decides whether a service item may be handled across districts, in which
#   mode, and what is missing. The rules and their order are those of
#   contracts/catalog.md. The catalog is looked up by the item's basic code,
#   never iterated, so a decision costs the same for any catalog size.
#   input.time is used only to compare with the catalog's effective dates,
#   whole days at 00:00 +08:00, so the decision is the same all day long:
#   the gateway may remember it for the day (decision_time_granularity).
#   A rule that looks at the hour must remove that declaration.
# custom:
#   decision_time_granularity: day
package tongban.crossdistrict

import data.tongban.catalog

# The catalog entry of the requested item (undefined when unknown).
item := catalog.items[input.item.basic_code]

# decision is the answer the gateway records. Rules 1 and 2 short-circuit:
# when either fails it is the only reason.
decision := denial([reason_item_unknown], []) if {
	not item
} else := denial([reason_not_cross_district], []) if {
	# Only an explicit true lets an item cross; a missing flag does not.
	not item.cross_district == true
} else := full_decision

# A denial carries no mode, target implementation code or promised days.
denial(found, missing) := {
	"allow": false,
	"missing_materials": missing,
	"reasons": found,
}

full_decision := {
	"allow": true,
	"mode": mode,
	"target_impl_code": target_impl_code,
	"promised_days": item.promised_days[input.to],
	"missing_materials": [],
	"reasons": [],
} if {
	count(failed) == 0
} else := denial(reasons, missing_materials)

# Rules 3–7, reported in the contract's table order.
rule_order := [
	"direction_not_enabled",
	"applicant_kind_not_allowed",
	"not_yet_effective",
	"expired",
	"no_mode_for_channel",
	"materials_missing",
]

reasons := [{"code": code, "message": message[code]} |
	some code in rule_order
	failed[code]
]

# Rule 3: the direction from → to is enabled for the item.
# Membership is tested in a helper rule and negated as a whole, so that a
# missing input field fails the rule (a negated expression over an undefined
# reference would not).
direction_enabled if [input.from, input.to] in item.directions

failed contains "direction_not_enabled" if not direction_enabled

# Rule 4: the applicant kind is allowed.
applicant_kind_allowed if input.applicant.kind in item.applicant_kinds

failed contains "applicant_kind_not_allowed" if not applicant_kind_allowed

# Rule 5: effective_from 00:00 +08:00 ≤ time < effective_until 00:00 +08:00,
# compared as instants. An unparseable time fails closed as not yet effective.
received_ns := time.parse_rfc3339_ns(input.time)

day_start_ns(date) := time.parse_rfc3339_ns(sprintf("%sT00:00:00+08:00", [date]))

effective_started if received_ns >= day_start_ns(item.effective_from)

failed contains "not_yet_effective" if not effective_started

failed contains "expired" if {
	item.effective_until != null
	received_ns >= day_start_ns(item.effective_until)
}

# Rule 6: the preferred mode for the channel if listed, else JOINT if listed.
preferred_mode := "ONLINE" if input.channel == "ONLINE"

preferred_mode := "REMOTE_RECEIPT" if input.channel in {"COUNTER", "POST"}

mode := preferred_mode if {
	preferred_mode in item.modes
} else := "JOINT" if {
	"JOINT" in item.modes
}

failed contains "no_mode_for_channel" if not mode

# Rule 7: every required material is provided; extra materials are allowed.
provided_materials := {code | some code in object.get(input, "materials", [])}

missing_materials := sort([code |
	some code, _ in item.required_materials
	not code in provided_materials
])

failed contains "materials_missing" if count(missing_materials) > 0

# The owning department's code for the target division, then the basic code.
target_impl_code := concat("", [catalog.departments[item.department].codes[input.to], input.item.basic_code])

# Messages for the clerk, one Chinese sentence per reason code.
message["direction_not_enabled"] := sprintf("该事项未开通从行政区划%v到%v的跨区通办。", [object.get(input, "from", ""), object.get(input, "to", "")])

message["applicant_kind_not_allowed"] := sprintf("该事项不受理申请人类型%v的跨区通办申请。", [object.get(input, ["applicant", "kind"], "")])

message["not_yet_effective"] := sprintf("该事项自%v起方可跨区通办，受理时间早于生效日期。", [object.get(item, "effective_from", "")])

message["expired"] := sprintf("该事项的跨区通办已于%v停止。", [object.get(item, "effective_until", "")])

message["no_mode_for_channel"] := sprintf("该事项没有适用于申请渠道%v的通办模式。", [object.get(input, "channel", "")])

message["materials_missing"] := sprintf("申请材料不齐全，缺少：%v。", [concat("、", missing_materials)])

reason_item_unknown := {
	"code": "item_unknown",
	"message": sprintf("事项基本编码%v不在跨区通办事项目录中。", [object.get(input, ["item", "basic_code"], "")]),
}

reason_not_cross_district := {
	"code": "item_not_cross_district",
	"message": sprintf("事项“%v”不可跨区通办。", [object.get(item, "name", input.item.basic_code)]),
}
