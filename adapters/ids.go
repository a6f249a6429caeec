package adapters

import "time"

// CST is the local time of China (UTC+8), the zone of Nanhai's times and of
// every time the adapters return.
var CST = time.FixedZone("CST", 8*3600)

// ResidentIDValid reports whether s is 18 characters, 17 digits and a GB
// 11643 check character (a digit or upper-case X) that matches.
func ResidentIDValid(s string) bool { return residentIDCheck(s) == "" }

// residentIDCheck returns the code of the first failing rule, "" if none.
func residentIDCheck(s string) string {
	if len(s) != 18 {
		return CodeLength
	}
	sum := 0
	weights := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	for i := 0; i < 17; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return CodeFormat
		}
		sum += int(c-'0') * weights[i]
	}
	last := s[17]
	if (last < '0' || last > '9') && last != 'X' {
		return CodeFormat
	}
	if "10X98765432"[sum%11] != last {
		return CodeCheckDigit
	}
	return ""
}

// usccAlphabet is the GB 32100 character set: digits and upper-case letters
// without I, O, S, V and Z; a character's value is its index.
const usccAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

// USCCValid reports whether s is a 统一社会信用代码: 18 characters of the GB
// 32100 alphabet whose 18th is the check character of the first 17. The
// organisation code inside is not checked.
func USCCValid(s string) bool { return usccCheck(s) == "" }

func usccCheck(s string) string {
	if len(s) != 18 {
		return CodeLength
	}
	var v [18]int
	for i := 0; i < 18; i++ {
		v[i] = usccValue(s[i])
		if v[i] < 0 {
			return CodeFormat
		}
	}
	weights := [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += v[i] * weights[i]
	}
	check := 31 - sum%31
	if check == 31 {
		check = 0
	}
	if v[17] != check {
		return CodeCheckDigit
	}
	return ""
}

func usccValue(c byte) int {
	for i := 0; i < len(usccAlphabet); i++ {
		if usccAlphabet[i] == c {
			return i
		}
	}
	return -1
}

// USCCCheckChar returns the GB 32100 check character of the first 17
// characters of s, or 0 if s is shorter or holds a character outside the
// alphabet. It is meant for tests and tools that make valid codes.
func USCCCheckChar(s string) byte {
	if len(s) < 17 {
		return 0
	}
	weights := [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}
	sum := 0
	for i := 0; i < 17; i++ {
		v := usccValue(s[i])
		if v < 0 {
			return 0
		}
		sum += v * weights[i]
	}
	return usccAlphabet[(31-sum%31)%31]
}

// allDigits reports whether s is n ASCII digits.
func allDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// CaseNumberRule returns a check for case numbers made of prefix, a valid
// calendar date yyyyMMdd and n digits: Nanhai's is CaseNumberRule("440605",
// 4), Liwan's CaseNumberRule("LW", 5).
func CaseNumberRule(prefix string, n int) func(string) bool {
	return func(s string) bool {
		if len(s) != len(prefix)+8+n || s[:len(prefix)] != prefix {
			return false
		}
		rest := s[len(prefix):]
		if !allDigits(rest, 8+n) {
			return false
		}
		d, err := time.Parse("20060102", rest[:8])
		return err == nil && d.Format("20060102") == rest[:8]
	}
}
