package storage_test

import (
	"strings"
	"testing"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/storage"
)

// A masked search must not see what masking hides: every digit auth.MaskText masks lies in a
// run SearchMask replaces, so no piece of it can be searched for (issue 11 item 5).
func TestSearchMaskHidesWhatMaskTextMasks(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"我的电话13812345678，请回电", "电话138.1234.5678", "电话１３８１２３４５６７８谢谢", "138 - 1234 - 5678",
		"0086 138 1234 5678", "身份证 110101 19900307 123X 已核实", "旧证110101900307123", "座机0571-88886666",
		"座机010 12345678", "投诉 噪音扰民，电话1381234567…", "回电1381234...", "身份证１１０１０１１９９００３０７１２３Ｘ",
	} {
		masked := []rune(auth.MaskText(s))
		searched := storage.SearchMask(s)
		orig := []rune(s)
		for i := range orig {
			if masked[i] != orig[i] && strings.ContainsRune(searched, orig[i]) && strings.ContainsRune("0123456789０１２３４５６７８９", orig[i]) {
				// The digit is masked for display; its run must be gone from the search text.
				if strings.Contains(searched, string(orig[max(0, i-1):min(len(orig), i+2)])) {
					t.Errorf("SearchMask(%q) = %q keeps %q, which MaskText masks", s, searched, string(orig[max(0, i-1):min(len(orig), i+2)]))
				}
			}
		}
		if searched == s {
			t.Errorf("SearchMask(%q) changed nothing", s)
		}
	}
	for s, want := range map[string]string{
		"1号楼 3 单元":       "1号楼 3 单元",
		"文三路 138 号":      "文三路 138 号",
		"2024年3月1日":      "2024年3月1日",
		"电话14590630500。": "电话*。",
		"共12…":           "共12…",
		"门牌1234…":        "门牌*",
	} {
		if got := storage.SearchMask(s); got != want {
			t.Errorf("SearchMask(%q) = %q, want %q", s, got, want)
		}
	}
}

func BenchmarkSearchMask(b *testing.B) {
	for name, s := range map[string]string{
		"no-digits": strings.Repeat("楼下广场舞噪音太大，晚上十点还在放音乐。", 4),
		"phone":     "楼下广场舞噪音太大，晚上十点还在放音乐，请回电13812345678，地址：西湖区文三路 138 号 2 单元",
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				_ = storage.SearchMask(s)
			}
		})
	}
}
