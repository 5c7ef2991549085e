package people

// What simulated people write. Short, in the words a city's staff use.
var (
	returnReasonsAtSignFor = []string{
		"非本网格范围，请改派",
		"属专业部门职责，网格员无法处置",
		"本人今日外出培训，无法及时签收",
	}
	returnReasonsOnSite = []string{
		"现场核实为燃气公司管线，需专业单位处置",
		"现场核实地址有误，不在本网格",
		"需市政养护单位专业设备处置",
	}
	extensionReasons = []string{
		"需等待配件到货",
		"需协调施工单位进场",
		"降雨影响，待天晴后施工",
		"涉及多个部门，需联合处置",
	}
	progressNotes = []string{
		"已到达现场，正在处置",
		"已联系责任单位，对方已派人",
		"现场已设置警示标志，等待处置完成",
		"已与当事人沟通，正在整改",
	}
	// resolveNotes by the major class of the category (GB/T 30428); "" for any other.
	resolveNotes = map[string][]string{
		"01": {"已更换井盖并加固", "路灯已修复，夜间亮灯正常", "燃气公司已关阀检修，现场无异味", "积水已排除，雨水井已清掏"},
		"02": {"违停车辆已驶离，已张贴告知单", "积水已排除，道路恢复通行", "桥面裂缝已封闭，待专业检测"},
		"03": {"垃圾已清运，现场已保洁", "流动摊贩已劝离", "建筑垃圾已清运，已告知责任人"},
		"04": {"已责令停止夜间施工", "经监测噪声已达标", "油烟净化器已整改"},
		"05": {"火情已扑灭，现场无人员受伤", "人员已疏导，秩序恢复"},
		"06": {"已协调恢复供水", "已联系社区上门服务", "已答复市民并办结"},
		"":   {"已处置完毕，现场恢复正常"},
	}
	refuseExtensionReasons = []string{"时限内可完成，请加快处置", "请先报送处置方案再申请延期"}
	reopenReasons          = []string{"核查未通过：现场问题仍然存在", "核查未通过：反馈照片与现场不符"}
)
