"""thinkloop.verifiers"""
