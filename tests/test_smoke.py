from helpers import raw_request


def test_demo_index(demo, certs):
    response = raw_request(demo.port, demo.url("/"))
    assert response.status == 20
    assert b"hospes demo capsule" in response.body
    me = raw_request(demo.port, demo.url("/me"))
    assert me.status == 60
    me = raw_request(demo.port, demo.url("/me"), cert=certs.make("bob"))
    assert me.status == 20, me.header
    assert b"bob" in me.body
