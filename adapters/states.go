package adapters

// StateInfo is one row of table C of districts.md: a canonical state, its
// Nanhai EVENT_CODE and its Chinese name (Nanhai EVENT_NAME).
type StateInfo struct {
	State State
	Code  int
	Name  string
}

// States is table C of districts.md in EVENT_CODE order.
var States = []StateInfo{
	{Received, 1, "已接件"},
	{Withdrawn, 2, "已撤件"},
	{Accepted, 3, "窗口受理"},
	{NotAccepted, 4, "不受理"},
	{Rejected, 5, "不予受理"},
	{SupplementRequested, 6, "补正(开始)"},
	{SupplementReceived, 7, "补正(结束)"},
	{InReview, 8, "部门受理"},
	{Suspended, 9, "特别程序(开始)"},
	{Resumed, 10, "特别程序(结束)"},
	{Approved, 11, "办结(通过)"},
	{ApprovedWithTolerance, 12, "办结(容缺通过)"},
	{Denied, 13, "办结(不通过)"},
	{Retracted, 14, "撤回"},
	{Revoked, 15, "撤销"},
	{WithdrawalPending, 16, "撤件待确认"},
}

// Info returns the table C row of s; ok is false for a state not in the
// table.
func (s State) Info() (StateInfo, bool) {
	for _, i := range States {
		if i.State == s {
			return i, true
		}
	}
	return StateInfo{}, false
}

// Terminal reports whether no status may follow s (table C: 11, 12, 13, 15).
func (s State) Terminal() bool {
	switch s {
	case Approved, ApprovedWithTolerance, Denied, Revoked:
		return true
	}
	return false
}

// Withdrawal reports whether s is one of the withdrawal states (2 已撤件,
// 14 撤回, 16 撤件待确认).
func (s State) Withdrawal() bool {
	switch s {
	case Withdrawn, Retracted, WithdrawalPending:
		return true
	}
	return false
}

// StateByCode returns the state of a Nanhai EVENT_CODE.
func StateByCode(code int) (State, bool) {
	if code >= 1 && code <= len(States) {
		return States[code-1].State, true
	}
	return "", false
}

// Known reports whether k is in table A.
func (k ApplicantKind) Known() bool {
	switch k {
	case Person, Enterprise, Institution, SocialOrg, Government, OtherOrg:
		return true
	}
	return false
}

// Known reports whether t is in table B.
func (t IDType) Known() bool {
	return t.ForPerson() || t.ForOrganisation()
}

// ForPerson reports whether t is an ID type of a natural person (111, 414,
// 516, 511, 999).
func (t IDType) ForPerson() bool {
	switch t {
	case ResidentID, Passport, HKMacaoPermit, TaiwanPermit, OtherPersonID:
		return true
	}
	return false
}

// ForOrganisation reports whether t is an ID type of an organisation (001,
// 099).
func (t IDType) ForOrganisation() bool {
	return t == USCC || t == OtherOrgID
}

// Known reports whether c is in table D.
func (c Channel) Known() bool { return c == Counter || c == Online || c == Post }

// Known reports whether f is in table D.
func (f MaterialForm) Known() bool { return f == Original || f == Copy || f == Electronic }

// Known reports whether m is one of the three handling modes.
func (m HandlingMode) Known() bool {
	return m == ModeOnline || m == ModeRemoteReceipt || m == ModeJoint
}
