package policies

import "encoding/json"

// Reason codes of a denial, in the order the rules are checked
// (contracts/catalog.md).
const (
	ReasonItemUnknown             = "item_unknown"
	ReasonItemNotCrossDistrict    = "item_not_cross_district"
	ReasonDirectionNotEnabled     = "direction_not_enabled"
	ReasonApplicantKindNotAllowed = "applicant_kind_not_allowed"
	ReasonNotYetEffective         = "not_yet_effective"
	ReasonExpired                 = "expired"
	ReasonNoModeForChannel        = "no_mode_for_channel"
	ReasonMaterialsMissing        = "materials_missing"
)

// Handling modes (国办发〔2020〕35号).
const (
	ModeOnline        = "ONLINE"         // 全程网办
	ModeRemoteReceipt = "REMOTE_RECEIPT" // 异地代收代办
	ModeJoint         = "JOINT"          // 多地联办
)

// Reason is one failed rule: its code and a Chinese sentence for the clerk.
type Reason struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Decision is the policy's answer (contracts/catalog.md). Allow is true
// exactly when Reasons is empty; on a denial Mode, TargetImplCode and
// PromisedDays are empty. Revision is not set by the policy: the gateway
// adds the engine's revision when it logs or returns the decision.
type Decision struct {
	Allow            bool     `json:"allow"`
	Mode             string   `json:"mode,omitempty"`
	TargetImplCode   string   `json:"target_impl_code,omitempty"`
	PromisedDays     int      `json:"promised_days,omitempty"`
	MissingMaterials []string `json:"missing_materials"`
	Reasons          []Reason `json:"reasons"`
	Revision         string   `json:"revision,omitempty"`
}

// ReasonCodes returns the codes of the decision's reasons, in order.
func (d Decision) ReasonCodes() []string {
	codes := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		codes[i] = r.Code
	}
	return codes
}

// MarshalJSON writes the decision with missing_materials and reasons always
// present as arrays.
func (d Decision) MarshalJSON() ([]byte, error) {
	type plain Decision
	if d.MissingMaterials == nil {
		d.MissingMaterials = []string{}
	}
	if d.Reasons == nil {
		d.Reasons = []Reason{}
	}
	return json.Marshal(plain(d))
}
