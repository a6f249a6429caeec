package policies

// Catalog is the item catalog of a bundle (tongban/catalog/data.json), as an
// administrator's view shows it. The policy reads the same data in Rego; Go
// never decides anything from it.
type Catalog struct {
	Departments map[string]Department `json:"departments"`
	Items       map[string]Item       `json:"items"`
}

// Department is an implementing department and its 统一社会信用代码 in each
// division.
type Department struct {
	Name  string            `json:"name"`
	Codes map[string]string `json:"codes"`
}

// Item is one service item (事项) of the catalog, keyed in Catalog.Items by
// its 12-digit basic code.
type Item struct {
	Name              string            `json:"name"`
	Department        string            `json:"department"`
	CrossDistrict     bool              `json:"cross_district"`
	ApplicantKinds    []string          `json:"applicant_kinds"`
	Modes             []string          `json:"modes"`
	Directions        [][]string        `json:"directions"`
	RequiredMaterials map[string]string `json:"required_materials"`
	PromisedDays      map[string]int    `json:"promised_days"`
	// EffectiveFrom and EffectiveUntil are YYYY-MM-DD dates (from inclusive,
	// until exclusive, both at 00:00 +08:00); nil when not set.
	EffectiveFrom  *string `json:"effective_from"`
	EffectiveUntil *string `json:"effective_until"`
}
