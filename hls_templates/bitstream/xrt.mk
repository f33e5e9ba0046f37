ifneq ($(filter bitstream kernel,$(MAKECMDGOALS)),)
$(call require_tool,v++,$(VPP_HINT))
endif

PLATFORM ?= {{PLATFORM}}
KERNEL_OBJECT := build/{{KERNEL}}.xo
KERNEL_SOURCES := bitstream/{{KERNEL_SOURCE}} bitstream/codesign_io.h \
	$(wildcard hls/firmware/*.cpp hls/firmware/*.h hls/firmware/weights/*.h)

kernel: $(KERNEL_OBJECT)

# The kernel is compiled for {{CLOCK_MHZ}} MHz, the board's clock_mhz. The link keeps the
# platform's default kernel clock; check it with `platforminfo $(PLATFORM)`.
$(KERNEL_OBJECT): $(KERNEL_SOURCES)
	$(call require_tool,v++,$(VPP_HINT))
	mkdir -p build
	v++ -c -t hw --platform $(PLATFORM) -k {{KERNEL}} --hls.clock {{CLOCK_HZ}}:{{KERNEL}} \
		-I hls/firmware --temp_dir build/vpp_compile --log_dir build/logs \
		-o $@ bitstream/{{KERNEL_SOURCE}} hls/firmware/{{PROJECT}}.cpp

bitstream: deploy/{{BITSTREAM_NAME}}.xclbin

deploy/{{BITSTREAM_NAME}}.xclbin: $(KERNEL_OBJECT) bitstream/connectivity.cfg
	$(call require_tool,v++,$(VPP_HINT))
	mkdir -p deploy
	v++ -l -t hw --platform $(PLATFORM) --config bitstream/connectivity.cfg \
		--temp_dir build/vpp_link --log_dir build/logs -o $@ $(KERNEL_OBJECT)
