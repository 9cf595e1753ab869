"""thinkloop.bench"""
