include $(sort $(wildcard $(BR2_EXTERNAL_PORTCULLIS_PATH)/package/*/*.mk))
