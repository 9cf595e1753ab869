"""thinkloop.backends"""
