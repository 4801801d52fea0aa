from tests.conftest import PASSWORD


def test_login_and_home(client, make_user, login):
    user = make_user("operator")
    login(user)
    response = client.get("/")
    assert response.status_code == 200
    assert user.full_name in response.get_data(as_text=True)
