ifneq ($(filter bitstream,$(MAKECMDGOALS)),)
$(call require_tool,vivado,$(VIVADO_HINT))
$(call require_tool,$(HLS),$(HLS_HINT))
endif
ifneq ($(filter ip,$(MAKECMDGOALS)),)
$(call require_tool,$(HLS),$(HLS_HINT))
endif

IP_COMPONENT := build/wrapper_prj/solution1/impl/ip/component.xml
WRAPPER_SOURCES := bitstream/hls.tcl bitstream/codesign_io.h bitstream/{{WRAPPER_SOURCE}} \
	$(wildcard hls/firmware/*.cpp hls/firmware/*.h hls/firmware/weights/*.h)

ip: $(IP_COMPONENT)

$(IP_COMPONENT): $(WRAPPER_SOURCES)
	$(call require_tool,$(HLS),$(HLS_HINT))
	$(HLS) -f bitstream/hls.tcl -tclargs export

bitstream: deploy/{{BITSTREAM_NAME}}.bit

deploy/{{BITSTREAM_NAME}}.bit: $(IP_COMPONENT) bitstream/block_design.tcl
	$(call require_tool,vivado,$(VIVADO_HINT))
	mkdir -p build
	vivado -mode batch -notrace -nojournal -log build/vivado.log -source bitstream/block_design.tcl
