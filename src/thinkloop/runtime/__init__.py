"""thinkloop.runtime"""
